"""Every hookspec is documented for plugin authors and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from changarrito.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[3]
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "changarrito_spec")
)


def test_there_are_hookspecs_to_check() -> None:
    assert HOOKS == ["register_llm_providers", "register_payment_providers"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_is_documented_in_docs_plugins(hook: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    signature = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(signature.parameters)
    assert f"### `{hook}({params})`" in docs


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_has_a_test(hook: str) -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_hook_{hook}_\w+", sources)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hookspec_states_what_it_returns(hook: str) -> None:
    assert "Returns" in (getattr(hookspecs, hook).__doc__ or "")
