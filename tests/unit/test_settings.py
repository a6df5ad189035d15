"""The one configuration: what it reads, how it parses, and that the README says all of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.errors import ConfigurationError
from changarrito.plugins.manager import load_plugins
from changarrito.settings import PluginSettings, Settings

README = Path(__file__).resolve().parents[2] / "README.md"
_NAME = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")


def readme_variables() -> set[str]:
    """The variables named in the first column of the README's configuration table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(_NAME.findall(line.split("|")[1]))
    return names


def provider_variables() -> set[str]:
    """Every variable the built-in providers declare (platform keys, base URLs...); a
    third-party plugin documents its own in its README."""
    registry = load_plugins(PluginSettings(allow_list=frozenset()))  # the built-ins alone
    names: set[str] = set()
    for info in registry.info():
        names.update(type(registry.get(info.kind, info.id)).env_vars())
    return names


def test_every_variable_the_service_reads_is_in_the_readme_table() -> None:
    read = Settings.variables() | provider_variables()
    missing = read - readme_variables()
    assert not missing, f"document these in the README's configuration table: {sorted(missing)}"


def test_every_variable_in_the_readme_table_is_read() -> None:
    documented = readme_variables()
    unread = documented - Settings.variables() - provider_variables()
    assert not unread, f"the README documents variables nothing reads: {sorted(unread)}"


def test_defaults_need_no_environment_at_all() -> None:
    settings = Settings.from_env({})
    assert settings.database.url is None
    assert settings.role.name == "all"
    assert settings.llm.provider == "openai" and settings.llm.model is None
    assert settings.workers.concurrency == 16
    assert settings.metrics.port is None
    assert settings.plugins.allow_list is None


def test_the_operators_limits_have_defaults_and_are_read_as_given() -> None:
    defaults = Settings.from_env({})
    assert (defaults.limits.payment_links, defaults.limits.verify) == (30, 10)
    assert (defaults.llm.platform_max_tokens, defaults.llm.platform_max_prompt_chars) == (
        1024,
        24000,
    )
    assert defaults.request_timeout == 10.0
    given = Settings.from_env(
        {
            "CHANGARRITO_PAYMENT_LINKS_PER_MINUTE": "0",
            "CHANGARRITO_VERIFY_PER_MINUTE": "3",
            "CHANGARRITO_PLATFORM_LLM_MAX_TOKENS": "200",
            "CHANGARRITO_PLATFORM_LLM_MAX_PROMPT_CHARS": "5000",
        }
    )
    assert (given.limits.payment_links, given.limits.verify) == (0, 3)
    assert (given.llm.platform_max_tokens, given.llm.platform_max_prompt_chars) == (200, 5000)


@pytest.mark.parametrize(
    "name",
    ["CHANGARRITO_LLM_PLATFORM_FALLBACK", "CHANGARRITO_METRICS_TENANT_LABELS"],
)
@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("on", True),
        ("yes", True),
        ("1", True),
        ("TRUE", True),
        ("off", False),
        ("no", False),
        ("0", False),
        ("false", False),
    ],
)
def test_every_switch_reads_the_same_words(name: str, raw: str, value: bool) -> None:
    settings = Settings.from_env({name: raw})
    read = {
        "CHANGARRITO_LLM_PLATFORM_FALLBACK": settings.llm.platform_fallback,
        "CHANGARRITO_METRICS_TENANT_LABELS": settings.metrics.tenant_labels,
    }
    assert read[name] is value


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("CHANGARRITO_LLM_PLATFORM_FALLBACK", "maybe"),
        ("CHANGARRITO_METRICS_TENANT_LABELS", "sometimes"),
        ("CHANGARRITO_CIPHER", "rot13"),
        ("CHANGARRITO_ROLE", "frontend"),
        ("CREDENTIALS_CACHE_TTL", "-1"),
        ("CREDENTIALS_CACHE_TTL", "soon"),
        ("CHANGARRITO_WORKERS_CONCURRENCY", "many"),
        ("CHANGARRITO_MAX_ATTEMPTS", "0"),
        ("CHANGARRITO_WORKER_POLL", "0"),
        ("CHANGARRITO_METRICS_PORT", "70000"),
        ("CHANGARRITO_METRICS_QUEUE_CACHE", "inf"),
        ("CHANGARRITO_PAYMENT_LINKS_PER_MINUTE", "-1"),
        ("CHANGARRITO_VERIFY_PER_MINUTE", "lots"),
        ("CHANGARRITO_PLATFORM_LLM_MAX_TOKENS", "0"),
        ("CHANGARRITO_PLATFORM_LLM_MAX_PROMPT_CHARS", "10"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line_naming_the_variable(name: str, bad: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({name: bad})
    assert raised.value.message.startswith(name)
    assert "\n" not in raised.value.message


@given(
    st.sampled_from(["1", "true", "yes", "on"]).flatmap(
        lambda word: st.sampled_from([word, word.upper(), f" {word} ", word.title()])
    )
)
def test_the_platform_llm_fallback_is_on_for_any_spelling_of_yes(value: str) -> None:
    assert Settings.from_env({"CHANGARRITO_LLM_PLATFORM_FALLBACK": value}).llm.platform_fallback


@pytest.mark.parametrize("value", [None, "", "0", "false", "no", "off"])
def test_the_platform_llm_fallback_is_off_unless_switched_on(value: str | None) -> None:
    env = {} if value is None else {"CHANGARRITO_LLM_PLATFORM_FALLBACK": value}
    assert not Settings.from_env(env).llm.platform_fallback


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_any_non_negative_number_of_seconds_is_read_back_as_given(seconds: float) -> None:
    settings = Settings.from_env({"CREDENTIALS_CACHE_TTL": repr(seconds)})
    assert settings.crypto.credentials_cache_ttl == seconds


def test_secrets_never_show_in_the_settings_repr() -> None:
    env = {
        "DATABASE_URL": "postgresql://u:db-password-123@h/db",
        "CHANGARRITO_ENCRYPTION_KEYS": "k1:c2VjcmV0LWtleS1tYXRlcmlhbA==",
        "JWT_SECRET": "jwt-secret-value-456",
        "INTERNAL_API_KEY": "internal-key-789",
        "WHATSAPP_APP_SECRET": "app-secret-abc",
        "WHATSAPP_VERIFY_TOKEN": "verify-token-def",
        "OPENAI_API_KEY": "sk-openai-ghi",
    }
    shown = repr(Settings.from_env(env))
    for secret in env.values():
        assert secret not in shown


@pytest.mark.parametrize("value", ["", " ", ","])
def test_an_empty_plugin_allow_list_loads_no_third_party_plugin(value: str) -> None:
    assert Settings.from_env({"CHANGARRITO_LOAD_PLUGINS": value}).plugins.allow_list == frozenset()


def test_an_unset_plugin_allow_list_loads_every_plugin() -> None:
    assert Settings.from_env({}).plugins.allow_list is None


def test_the_plugin_allow_list_is_a_set_of_names() -> None:
    settings = Settings.from_env({"CHANGARRITO_LOAD_PLUGINS": " mistral, ,conekta "})
    assert settings.plugins.allow_list == frozenset({"mistral", "conekta"})
