"""The handoff tool, what a reply says about it, and the conversation settings of ``LLMConfig``
(validated where ``PUT /api/v1/integrations/llm`` validates every config: a 422 per field)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from changarrito.domain.chat import (
    HANDOFF_TOOL,
    LLMConfig,
    Reply,
    Tool,
    ToolCall,
    Usage,
)
from changarrito.domain.errors import ValidationFailed
from changarrito.domain.model import IntegrationType
from changarrito.plugins.catalog import RegistryCatalog
from changarrito.plugins.loader import DEFAULT_PLUGINS
from changarrito.plugins.registry import ProviderRegistry, discover_none
from changarrito.testing import FakeUpstream


def reply(*calls: ToolCall) -> Reply:
    return Reply(text="", model="m", usage=Usage(), latency_ms=1.0, provider="p", tool_calls=calls)


def test_the_handoff_tool_asks_for_a_reason_as_a_json_schema_object() -> None:
    assert isinstance(HANDOFF_TOOL, Tool) and HANDOFF_TOOL.name == "handoff"
    schema = HANDOFF_TOOL.parameters
    assert schema["type"] == "object" and schema["required"] == ["reason"]
    assert schema["properties"]["reason"]["type"] == "string"
    assert schema["properties"]["reason"]["description"]
    for when in ("person", "cannot help", "complaints", "refunds", "unsure"):
        assert when in HANDOFF_TOOL.description


def test_the_handoff_reason_is_the_first_handoff_calls_reason_stripped() -> None:
    calls = (
        ToolCall("price_of", {"reason": "not this one"}),
        ToolCall("handoff", {"reason": "  quiere un reembolso \n"}),
        ToolCall("handoff", {"reason": "nor this one"}),
    )
    assert reply(*calls).handoff_reason == "quiere un reembolso"


@pytest.mark.parametrize(
    "arguments",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": 3}, {"reason": None}],
    ids=["missing", "empty", "blank", "number", "null"],
)
def test_a_handoff_without_a_usable_reason_says_the_model_asked_for_a_person(
    arguments: dict[str, Any],
) -> None:
    assert reply(ToolCall("handoff", arguments)).handoff_reason == "the model asked for a person"


def test_no_handoff_call_means_no_handoff_reason() -> None:
    assert reply().handoff_reason is None
    assert reply(ToolCall("price_of", {"sku": "A1"})).handoff_reason is None


def test_a_tool_call_defaults_to_no_arguments_and_no_id() -> None:
    call = ToolCall("handoff")
    assert (call.arguments, call.id) == ({}, None)


def test_the_conversation_settings_are_camel_case_on_the_wire() -> None:
    config = msgspec.convert(
        {
            "handoffMessage": "Te atiende una persona.",
            "textOnlyReply": "Solo leo texto.",
            "quietPeriodSeconds": 3,
            "handoffIdleHours": 24,
        },
        LLMConfig,
    )
    assert config.handoff_message == "Te atiende una persona."
    assert config.text_only_reply == "Solo leo texto."
    assert (config.quiet_period_seconds, config.handoff_idle_hours) == (3.0, 24.0)
    assert LLMConfig().quiet_period_seconds is None and LLMConfig().handoff_idle_hours is None


@pytest.fixture(scope="module")
def catalog() -> RegistryCatalog:
    registry = ProviderRegistry.load(
        FakeUpstream().context(), env={}, builtins=DEFAULT_PLUGINS, discover=discover_none
    )
    return RegistryCatalog(registry)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "azure-openai", "ollama"])
def test_valid_conversation_settings_are_kept_for_every_provider(
    catalog: RegistryCatalog, provider: str
) -> None:
    secrets = {
        "openai": {"apiKey": "sk-x-0000000"},
        "anthropic": {"apiKey": "sk-ant-0000000"},
        "azure-openai": {"apiKey": "az-0000000", "endpoint": "https://shop.openai.azure.com"},
        "ollama": {"baseUrl": "https://ollama.shop.example"},
    }[provider]
    config = {
        "handoffMessage": "Te atiende una persona.",
        "textOnlyReply": "Solo leo texto.",
        "quietPeriodSeconds": 0,
        "handoffIdleHours": 720,
    }
    _, kept = catalog.normalize(IntegrationType.LLM, provider, secrets, config)
    assert kept == {**config, "quietPeriodSeconds": 0.0, "handoffIdleHours": 720.0}


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"quietPeriodSeconds": 61}, "config.quietPeriodSeconds", "Expected `float` <= 60.0"),
        ({"quietPeriodSeconds": -1}, "config.quietPeriodSeconds", "Expected `float` >= 0.0"),
        ({"handoffIdleHours": 0}, "config.handoffIdleHours", "Expected `float` > 0.0"),
        ({"handoffIdleHours": 721}, "config.handoffIdleHours", "Expected `float` <= 720.0"),
        ({"handoffIdleHours": "1d"}, "config.handoffIdleHours", "Expected `float | null`"),
        ({"handoffMessage": 3}, "config.handoffMessage", "Expected `str | null`, got `int`"),
        ({"textOnlyReply": ["x"]}, "config.textOnlyReply", "Expected `str | null`"),
    ],
)
def test_out_of_range_conversation_settings_are_a_422_naming_the_field(
    catalog: RegistryCatalog, config: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        catalog.normalize(IntegrationType.LLM, "openai", {"apiKey": "sk-x-0000000"}, config)
    [(path, said)] = info.value.errors
    assert path == field and said.startswith(message)
