"""Every hookspec is documented for plugin authors and exercised by a test; every name of the
public plugin module is documented, and no provider (built-in or example) reaches into
``changarrito.adapters``."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import changarrito
import changarrito.plugin
from changarrito.domain.kinds import IntegrationType
from changarrito.plugins import hookspecs
from changarrito.plugins.loader import DEFAULT_PLUGINS
from changarrito.plugins.registry import ProviderRegistry, discover_none
from changarrito.testing import FakeUpstream

ROOT = Path(__file__).resolve().parents[3]
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "changarrito_spec")
)


def test_there_are_hookspecs_to_check() -> None:
    assert HOOKS == [
        "register_llm_providers",
        "register_payment_providers",
        "register_whatsapp_providers",
    ]


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


# --- the public plugin module -------------------------------------------------------------------

PLUGIN_DOCS = (ROOT / "docs" / "plugins.md").read_text()
PUBLIC = sorted(changarrito.plugin.__all__)
#: The provider code a plugin author reads as an example: built-ins and both example packages.
PLUGIN_SOURCES = sorted(
    [
        *(ROOT / "src" / "changarrito" / "plugins" / "llm").rglob("*.py"),
        *(ROOT / "src" / "changarrito" / "plugins" / "payments").rglob("*.py"),
        *(ROOT / "examples").rglob("*.py"),
    ]
)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_name_of_the_public_plugin_module_is_documented(name: str) -> None:
    assert f"`{name}`" in PLUGIN_DOCS or f"`{name}(" in PLUGIN_DOCS


def test_the_public_plugin_module_exports_what_it_lists() -> None:
    missing = [n for n in PUBLIC if not hasattr(changarrito.plugin, n)]
    assert not missing
    assert changarrito.plugin.hookimpl is changarrito.hookimpl


def test_the_plugin_docs_name_nothing_under_adapters() -> None:
    assert "changarrito.adapters" not in PLUGIN_DOCS
    assert "adapters/" not in PLUGIN_DOCS


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_provider_imports_the_adapters(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert not [m for m in imported if m.startswith("changarrito.adapters")]


def test_the_examples_import_only_the_public_plugin_module() -> None:
    for path in (ROOT / "examples").glob("*/src/**/*.py"):
        tree = ast.parse(path.read_text())
        ours = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("changarrito")
        }
        assert ours <= {"changarrito", "changarrito.plugin"}, (path, ours)


_ENV_READ = re.compile(r"""env(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""")


def test_every_variable_a_builtin_provider_reads_is_declared() -> None:
    registry = ProviderRegistry.load(
        FakeUpstream().context(), env={}, builtins=DEFAULT_PLUGINS, discover=discover_none
    )
    declared = {
        var
        for kind in (IntegrationType.LLM, IntegrationType.PAYMENTS)
        for provider_id in registry.ids(kind)
        for var in type(registry.get(kind, provider_id)).env_vars()
    }
    read = {
        name
        for path in PLUGIN_SOURCES
        if "examples" not in path.parts
        for name in _ENV_READ.findall(path.read_text())
    }
    assert read and read <= declared, read - declared
