"""The loader: built-ins and entry points alike, failures reported, duplicates refused."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from changarrito import hookimpl
from changarrito.domain.errors import ConfigurationError, ValidationFailed
from changarrito.plugin import PaymentLink, PaymentProvider
from changarrito.plugins.llm.openai import OpenAIProvider
from changarrito.plugins.loader import DEFAULT_PLUGINS
from changarrito.plugins.registry import ProviderRegistry, discover_none, format_plugins_table
from changarrito.testing import FakeUpstream

ALLOW = "CHANGARRITO_LOAD_PLUGINS"
LLM_BUILTINS = tuple(m for m in DEFAULT_PLUGINS if ".llm." in m)


def load(**kwargs: Any) -> ProviderRegistry:
    kwargs.setdefault("env", {})
    kwargs.setdefault("discover", discover_none)
    return ProviderRegistry.load(FakeUpstream().context(), **kwargs)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for throw-away plugin modules, removed again afterwards."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in set(sys.modules) - before:
            if name.startswith("tmpplugin"):
                del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> str:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return name


class CopyOfOpenAI(OpenAIProvider):
    pass


class DummyPayments(PaymentProvider):
    id = "dummy-pay"
    name = "Dummy"
    credentials_schema = OpenAIProvider.credentials_schema
    config_schema = OpenAIProvider.config_schema

    async def verify(self, credentials: Any, config: Any) -> None:
        return None

    async def create_payment_link(self, **kwargs: Any) -> PaymentLink:  # type: ignore[override]
        return PaymentLink(provider=self.id, provider_id="1", url="https://pay")

    async def parse_webhook(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError


class DuplicatePlugin:
    @hookimpl
    def register_llm_providers(self, register: Any) -> None:
        register(CopyOfOpenAI)


class PaymentsPlugin:
    @hookimpl
    def register_payment_providers(self, register: Any) -> None:
        register(DummyPayments)


def test_hook_register_llm_providers_registers_every_builtin_llm_provider() -> None:
    registry = load(builtins=LLM_BUILTINS)
    assert registry.ids("llm") == ["anthropic", "azure-openai", "ollama", "openai", "openrouter"]
    assert isinstance(registry.llm("openai"), OpenAIProvider)
    info = {i.id: i for i in registry.info("llm")}
    assert info["openai"].distribution == "changarrito"
    assert info["openai"].credential_fields == ("apiKey", "baseUrl?")
    assert "systemPrompt?" in info["openai"].config_fields


def test_hook_register_payment_providers_registers_payment_classes() -> None:
    registry = load(builtins=(), extra=[("dummy", PaymentsPlugin())])
    assert isinstance(registry.payment("dummy-pay"), DummyPayments)
    assert registry.ids("llm") == []


def test_duplicate_provider_ids_are_refused_naming_both_origins() -> None:
    with pytest.raises(ConfigurationError) as info:
        load(builtins=("changarrito.plugins.llm.openai",), extra=[("copycat", DuplicatePlugin())])
    message = str(info.value)
    assert "'openai'" in message and "changarrito.plugins.llm.openai" in message
    assert "copycat" in message


def test_a_missing_builtin_module_is_reported_not_fatal() -> None:
    with structlog.testing.capture_logs() as logs:
        registry = load(builtins=("changarrito.plugins.llm.openai", "changarrito.plugins.nope"))
    assert registry.ids("llm") == ["openai"]
    assert [f.name for f in registry.failed] == ["changarrito.plugins.nope"]
    assert any(
        e["event"] == "plugin_failed" and e["plugin"] == "changarrito.plugins.nope" for e in logs
    )


def test_a_plugin_raising_on_import_is_reported_by_name(plugin_dir: Path) -> None:
    write_module(plugin_dir, "tmpplugin_boom", "raise RuntimeError('boom at import')\n")
    registry = load(
        builtins=(),
        discover=lambda: [EntryPoint("boom", "tmpplugin_boom", "changarrito")],
    )
    [failed] = registry.failed
    assert failed.name == "boom" and "RuntimeError: boom at import" in failed.error
    assert "boom" in format_plugins_table(registry)


def test_a_plugin_whose_hook_raises_keeps_none_of_its_providers() -> None:
    class HalfPlugin:
        @hookimpl
        def register_llm_providers(self, register: Any) -> None:
            register(CopyOfOpenAI)
            raise ValueError("second provider broke")

    registry = load(builtins=(), extra=[("half", HalfPlugin())])
    assert registry.ids("llm") == [] and registry.failed[0].name == "half"


def test_a_plugin_implementing_an_unknown_hook_fails_check_pending() -> None:
    class Typo:
        @hookimpl
        def register_llm_provider(self, register: Any) -> None:  # missing "s"
            raise AssertionError("never called")

    registry = load(builtins=(), extra=[("typo", Typo())])
    assert [f.name for f in registry.failed] == ["typo"]
    assert "register_llm_provider" in registry.failed[0].error


def test_registering_something_that_is_not_a_provider_class_is_reported() -> None:
    class Wrong:
        @hookimpl
        def register_llm_providers(self, register: Any) -> None:
            register(OpenAIProvider(FakeUpstream().context()))  # an instance, not a class

    registry = load(builtins=(), extra=[("wrong", Wrong())])
    assert "not a subclass of LLMProvider" in registry.failed[0].error


def test_unknown_provider_id_lists_the_installed_ones() -> None:
    registry = load(builtins=LLM_BUILTINS)
    with pytest.raises(ValidationFailed) as info:
        registry.llm("gemini")
    assert "installed: anthropic, azure-openai, ollama, openai, openrouter" in str(info.value)


def test_allow_list_hides_entry_points_not_named_and_keeps_builtins(plugin_dir: Path) -> None:
    write_module(
        plugin_dir,
        "tmpplugin_dup",
        """
        from changarrito import hookimpl
        from changarrito.plugins.llm.openai import OpenAIProvider

        class Other(OpenAIProvider):
            id = "other"

        @hookimpl
        def register_llm_providers(register):
            register(Other)
        """,
    )
    found = [EntryPoint("other", "tmpplugin_dup", "changarrito")]
    builtins = ("changarrito.plugins.llm.openai",)
    shown = load(builtins=builtins, discover=lambda: found, env={})
    allowed = load(
        builtins=builtins, discover=lambda: found, env={"CHANGARRITO_LOAD_PLUGINS": "Other"}
    )
    hidden = load(builtins=builtins, discover=lambda: found, env={"CHANGARRITO_LOAD_PLUGINS": "x"})
    none = load(builtins=builtins, discover=lambda: found, env={"CHANGARRITO_LOAD_PLUGINS": " "})
    assert shown.ids("llm") == allowed.ids("llm") == ["openai", "other"]
    assert hidden.ids("llm") == none.ids("llm") == ["openai"]  # built-ins always load


def test_plugins_table_shows_id_kind_distribution_fields_and_failures() -> None:
    registry = load(builtins=("changarrito.plugins.llm.azure_openai", "changarrito.plugins.gone"))
    table = format_plugins_table(registry)
    header, row = table.splitlines()[:2]
    assert header.split() == ["ID", "KIND", "DISTRIBUTION", "CREDENTIALS", "CONFIG"]
    assert row.startswith("azure-openai") and "changarrito" in row
    assert "apiKey, endpoint" in row and "deployment?" in row
    assert "Failed plugins:" in table and "changarrito.plugins.gone" in table
