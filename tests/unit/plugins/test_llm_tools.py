"""Tools on the wire: each built-in provider offers them in its vendor's format only when asked,
and reads the model's tool calls and refusals back into the ``Reply``."""

from __future__ import annotations

from typing import Any

import pytest

from changarrito.domain.chat import HANDOFF_TOOL
from changarrito.plugin import ChatMessage, LLMProvider, Tool, ToolCall
from changarrito.plugins.llm.anthropic import AnthropicProvider
from changarrito.plugins.llm.azure_openai import AzureOpenAIProvider
from changarrito.plugins.llm.ollama import OllamaProvider
from changarrito.plugins.llm.openai import OpenAIProvider
from changarrito.plugins.llm.openrouter import OpenRouterProvider
from changarrito.testing import FakeUpstream, json_response

HI = [ChatMessage(role="user", content="quiero hablar con el dueño")]
OPENAI_LIKE = [OpenAIProvider, OpenRouterProvider, AzureOpenAIProvider]
CREDENTIALS: dict[type[LLMProvider], dict[str, Any]] = {
    OpenAIProvider: {"apiKey": "sk-tenant"},
    OpenRouterProvider: {"apiKey": "sk-or-tenant"},
    AzureOpenAIProvider: {"apiKey": "az-key", "endpoint": "https://shop.openai.azure.com"},
    AnthropicProvider: {"apiKey": "sk-ant-tenant"},
    OllamaProvider: {"baseUrl": "http://gpu:11434"},
}
PRICE = Tool(
    name="price_of",
    description="The price of a product.",
    parameters={"type": "object", "properties": {"sku": {"type": "string"}}},
)


def openai_answer(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini-2024",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }


def openai_call(name: str, arguments: str, call_id: str = "call_1") -> dict[str, Any]:
    function = {"name": name, "arguments": arguments}
    return {"id": call_id, "type": "function", "function": function}


def anthropic_answer(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    usage = {"input_tokens": 5, "output_tokens": 2}
    return {"model": "claude-x", "content": content, "stop_reason": stop_reason, "usage": usage}


async def chat(
    cls: type[LLMProvider], answer: dict[str, Any], tools: tuple[Tool, ...] = ()
) -> tuple[Any, FakeUpstream]:
    upstream = FakeUpstream(json_response(200, answer))
    provider = cls(upstream.context())
    config = provider.parse_config({"deployment": "gpt4o"} if cls is AzureOpenAIProvider else {})
    credentials = provider.parse_credentials(CREDENTIALS[cls])
    if tools:
        reply = await provider.chat(HI, config, credentials, tools=tools)
    else:
        reply = await provider.chat(HI, config, credentials)
    return reply, upstream


# --- which providers take tools --------------------------------------------------------------


@pytest.mark.parametrize("cls", [*OPENAI_LIKE, AnthropicProvider], ids=lambda c: c.id)
def test_the_openai_style_providers_and_anthropic_support_tools(cls: type[LLMProvider]) -> None:
    assert cls.supports_tools is True


def test_ollama_does_not_support_tools_so_it_is_never_offered_them() -> None:
    assert OllamaProvider.supports_tools is False
    assert LLMProvider.supports_tools is False


# --- OpenAI Chat Completions (OpenAI, OpenRouter, Azure) --------------------------------------


@pytest.mark.parametrize("cls", OPENAI_LIKE, ids=lambda c: c.id)
async def test_an_openai_style_request_offers_the_tools_as_functions_with_auto_choice(
    cls: type[LLMProvider],
) -> None:
    _, upstream = await chat(cls, openai_answer({"content": "ok"}), (HANDOFF_TOOL, PRICE))
    body = upstream.last_json()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "handoff",
                "description": HANDOFF_TOOL.description,
                "parameters": HANDOFF_TOOL.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "price_of",
                "description": "The price of a product.",
                "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
            },
        },
    ]
    assert body["tool_choice"] == "auto"


@pytest.mark.parametrize("cls", OPENAI_LIKE, ids=lambda c: c.id)
async def test_an_openai_style_request_without_tools_has_no_tool_fields(
    cls: type[LLMProvider],
) -> None:
    reply, upstream = await chat(cls, openai_answer({"content": "ok"}))
    assert "tools" not in upstream.last_json() and "tool_choice" not in upstream.last_json()
    assert (reply.text, reply.tool_calls, reply.refused) == ("ok", (), False)


@pytest.mark.parametrize("cls", OPENAI_LIKE, ids=lambda c: c.id)
async def test_an_openai_tool_call_is_read_as_a_handoff(cls: type[LLMProvider]) -> None:
    call = openai_call("handoff", '{"reason": "  quiere hablar con el dueño "}', "call_abc")
    answer = openai_answer(
        {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    )
    reply, _ = await chat(cls, answer, (HANDOFF_TOOL,))
    assert reply.tool_calls == (
        ToolCall(
            name="handoff", arguments={"reason": "  quiere hablar con el dueño "}, id="call_abc"
        ),
    )
    assert reply.handoff_reason == "quiere hablar con el dueño"
    assert (reply.text, reply.refused, reply.truncated) == ("", False, False)


async def test_null_content_next_to_a_tool_call_is_not_an_error() -> None:
    call = openai_call("price_of", '{"sku": "A12"}')
    answer = openai_answer({"content": None, "tool_calls": [call]}, "tool_calls")
    reply, _ = await chat(OpenAIProvider, answer, (PRICE,))
    assert reply.text == "" and reply.tool_calls[0].arguments == {"sku": "A12"}
    assert reply.handoff_reason is None
    assert (reply.model, reply.usage.input_tokens) == ("gpt-4o-mini-2024", 5)


async def test_text_said_along_with_a_tool_call_is_kept() -> None:
    call = openai_call("handoff", '{"reason": "reembolso"}')
    answer = openai_answer({"content": "Te comunico.", "tool_calls": [call]}, "tool_calls")
    reply, _ = await chat(OpenAIProvider, answer, (HANDOFF_TOOL,))
    assert (reply.text, reply.handoff_reason) == ("Te comunico.", "reembolso")


@pytest.mark.parametrize(
    "arguments",
    ["{not json", '"a string"', "[1, 2]", "", "null"],
    ids=["invalid", "string", "array", "empty", "null"],
)
async def test_tool_call_arguments_that_are_not_a_json_object_are_read_as_empty(
    arguments: str,
) -> None:
    call = openai_call("handoff", arguments)
    answer = openai_answer({"content": None, "tool_calls": [call]}, "tool_calls")
    reply, _ = await chat(OpenAIProvider, answer, (HANDOFF_TOOL,))
    assert reply.tool_calls[0].arguments == {}
    assert reply.handoff_reason == "the model asked for a person"


async def test_arguments_given_as_an_object_by_a_compatible_server_are_taken_as_they_are() -> None:
    call = {
        "id": "c",
        "type": "function",
        "function": {"name": "handoff", "arguments": {"reason": "x"}},
    }
    answer = openai_answer({"content": None, "tool_calls": [call]}, "tool_calls")
    reply, _ = await chat(OpenRouterProvider, answer, (HANDOFF_TOOL,))
    assert reply.handoff_reason == "x"


async def test_several_tool_calls_keep_their_order_and_a_nameless_one_is_skipped() -> None:
    calls = [
        openai_call("price_of", '{"sku": "A1"}', "c1"),
        {"id": "c2", "type": "function", "function": {"arguments": "{}"}},
        openai_call("handoff", '{"reason": "second"}', "c3"),
    ]
    answer = openai_answer({"content": None, "tool_calls": calls}, "tool_calls")
    reply, _ = await chat(OpenAIProvider, answer, (PRICE, HANDOFF_TOOL))
    assert [c.id for c in reply.tool_calls] == ["c1", "c3"]
    assert reply.handoff_reason == "second"


@pytest.mark.parametrize("cls", OPENAI_LIKE, ids=lambda c: c.id)
async def test_an_openai_refusal_is_read_as_refused(cls: type[LLMProvider]) -> None:
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    reply, _ = await chat(cls, openai_answer(message), (HANDOFF_TOOL,))
    assert reply.refused is True and reply.text == "" and reply.tool_calls == ()


async def test_a_content_filter_stop_is_read_as_refused() -> None:
    reply, _ = await chat(OpenAIProvider, openai_answer({"content": "Lo"}, "content_filter"))
    assert reply.refused is True and reply.text == "Lo"


async def test_an_empty_refusal_field_is_not_a_refusal() -> None:
    reply, _ = await chat(OpenAIProvider, openai_answer({"content": "Hola", "refusal": ""}))
    assert reply.refused is False and reply.text == "Hola"


# --- Anthropic Messages ----------------------------------------------------------------------


async def test_an_anthropic_request_offers_the_tools_with_input_schema_and_auto_choice() -> None:
    answer = anthropic_answer([{"type": "text", "text": "ok"}], "end_turn")
    _, upstream = await chat(AnthropicProvider, answer, (HANDOFF_TOOL,))
    body = upstream.last_json()
    assert body["tools"] == [
        {
            "name": "handoff",
            "description": HANDOFF_TOOL.description,
            "input_schema": HANDOFF_TOOL.parameters,
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}


async def test_an_anthropic_request_without_tools_has_no_tool_fields() -> None:
    answer = anthropic_answer([{"type": "text", "text": "ok"}], "end_turn")
    reply, upstream = await chat(AnthropicProvider, answer)
    assert "tools" not in upstream.last_json() and "tool_choice" not in upstream.last_json()
    assert (reply.text, reply.tool_calls, reply.refused) == ("ok", (), False)


async def test_an_anthropic_tool_use_block_is_read_as_a_handoff() -> None:
    content = [
        {"type": "text", "text": "Te comunico "},
        {"type": "text", "text": "con alguien."},
        {"type": "tool_use", "id": "toolu_01", "name": "handoff", "input": {"reason": "queja"}},
    ]
    reply, _ = await chat(AnthropicProvider, anthropic_answer(content, "tool_use"), (HANDOFF_TOOL,))
    assert reply.tool_calls == (
        ToolCall(name="handoff", arguments={"reason": "queja"}, id="toolu_01"),
    )
    assert (reply.text, reply.handoff_reason) == ("Te comunico con alguien.", "queja")
    assert (reply.refused, reply.truncated) == (False, False)


async def test_an_anthropic_tool_use_with_only_the_call_has_empty_text() -> None:
    content = [{"type": "tool_use", "id": "toolu_02", "name": "handoff", "input": {}}]
    reply, _ = await chat(AnthropicProvider, anthropic_answer(content, "tool_use"), (HANDOFF_TOOL,))
    assert reply.text == "" and reply.handoff_reason == "the model asked for a person"


async def test_an_anthropic_tool_input_that_is_not_an_object_is_read_as_empty() -> None:
    content = [{"type": "tool_use", "id": "toolu_03", "name": "handoff", "input": "reembolso"}]
    reply, _ = await chat(AnthropicProvider, anthropic_answer(content, "tool_use"), (HANDOFF_TOOL,))
    assert reply.tool_calls[0].arguments == {}


async def test_an_anthropic_refusal_stop_reason_is_read_as_refused() -> None:
    reply, _ = await chat(AnthropicProvider, anthropic_answer([], "refusal"), (HANDOFF_TOOL,))
    assert reply.refused is True and reply.text == "" and reply.tool_calls == ()


# --- Ollama ----------------------------------------------------------------------------------


async def test_ollama_never_sends_tools_even_when_called_with_them() -> None:
    answer = {"model": "llama3.2", "message": {"content": "Hola"}, "done": True}
    reply, upstream = await chat(OllamaProvider, answer, (HANDOFF_TOOL,))
    assert "tools" not in upstream.last_json()
    assert (reply.text, reply.tool_calls, reply.refused) == ("Hola", (), False)
