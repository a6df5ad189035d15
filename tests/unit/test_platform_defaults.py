"""What the platform falls back to, from its environment and the installed providers."""

from __future__ import annotations

from changarrito.domain.model import IntegrationType
from changarrito.plugins.manager import load_plugins
from changarrito.plugins.platform import platform_defaults
from changarrito.settings import Settings
from changarrito.testing import FakeUpstream

LLM = IntegrationType.LLM


def defaults(env: dict[str, str]):  # type: ignore[no-untyped-def]
    settings = Settings.from_env(env)
    registry = load_plugins(settings.plugins, http=FakeUpstream().clients())
    return platform_defaults(
        settings.plugins.env,
        registry,
        llm_provider=settings.llm.provider,
        llm_model=settings.llm.model,
    )


def test_without_llm_model_the_platform_provider_answers_with_its_own_default_model() -> None:
    found = defaults({"LLM_PROVIDER": "anthropic", "ANTHROPIC_API_KEY": "sk-ant-platform-0000"})
    credential = found.credential(LLM, "anthropic")
    assert credential is not None
    assert "model" not in credential.config  # not OpenAI's gpt-4o-mini sent to Anthropic
    assert found.default_provider(LLM) == "anthropic"


def test_llm_model_configures_only_the_llm_provider_it_goes_with() -> None:
    found = defaults(
        {
            "LLM_PROVIDER": "openai",
            "LLM_MODEL": "gpt-4.1-mini",
            "OPENAI_API_KEY": "sk-platform-openai-0000",
            "ANTHROPIC_API_KEY": "sk-ant-platform-0000",
        }
    )
    openai, anthropic = found.credential(LLM, "openai"), found.credential(LLM, "anthropic")
    assert openai is not None and openai.config["model"] == "gpt-4.1-mini"
    assert anthropic is not None and "model" not in anthropic.config


def test_a_platform_key_of_only_blanks_is_no_platform_key() -> None:
    found = defaults({"OPENAI_API_KEY": "   ", "ANTHROPIC_API_KEY": " sk-ant-platform-0000 "})
    assert found.credential(LLM, "openai") is None
    anthropic = found.credential(LLM, "anthropic")
    assert anthropic is not None and anthropic.secrets["apiKey"] == "sk-ant-platform-0000"
