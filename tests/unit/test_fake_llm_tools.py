"""The fake LLM server of the integration and end-to-end tests scripts tool calls and refusals
in both wire formats, as the real providers read them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from changarrito.adapters.http import HttpClients
from changarrito.domain.chat import HANDOFF_TOOL
from changarrito.domain.errors import RetryableProviderError
from changarrito.plugin import ChatMessage, LLMProvider, ProviderContext
from changarrito.plugins.llm.anthropic import AnthropicProvider
from changarrito.plugins.llm.openai import OpenAIProvider
from fakes.fake_llm import FakeLLM


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def providers(llm: FakeLLM) -> AsyncIterator[dict[str, LLMProvider]]:
    llm.clear_replies()
    http = HttpClients()
    env = {"OPENAI_BASE_URL": llm.url + "/v1", "ANTHROPIC_BASE_URL": llm.url + "/v1"}
    context = ProviderContext(http=http, env=env)
    try:
        yield {"openai": OpenAIProvider(context), "anthropic": AnthropicProvider(context)}
    finally:
        await http.aclose()


async def ask(provider: LLMProvider, text: str, **kwargs: Any) -> Any:
    return await provider.chat(
        [ChatMessage(role="user", content=text)],
        provider.parse_config({}),
        provider.parse_credentials({"apiKey": "sk-fake-0000000"}),
        **kwargs,
    )


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_a_scripted_tool_call_is_answered_once_to_the_request_that_offered_the_tool(
    llm: FakeLLM, providers: dict[str, LLMProvider], wire: str
) -> None:
    text = f"quiero hablar con alguien ({wire})"
    llm.reply_with_tool_call("handoff", {"reason": "pide una persona"}, when=text)

    other = await ask(providers[wire], "otra cosa", tools=(HANDOFF_TOOL,))
    untooled = await ask(providers[wire], text)
    handed = await ask(providers[wire], text, tools=(HANDOFF_TOOL,))
    again = await ask(providers[wire], text, tools=(HANDOFF_TOOL,))

    assert other.handoff_reason is None and untooled.handoff_reason is None
    assert untooled.text == f"Respuesta a: {text}"
    assert handed.handoff_reason == "pide una persona" and handed.text == ""
    assert handed.tool_calls[0].id
    assert again.handoff_reason is None and again.text == f"Respuesta a: {text}"
    offered = [FakeLLM.tools_offered(r) for r in llm.chats()[-4:]]
    assert offered == [["handoff"], [], ["handoff"], ["handoff"]]


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_a_scripted_refusal_is_read_as_refused(
    llm: FakeLLM, providers: dict[str, LLMProvider], wire: str
) -> None:
    llm.reply_with_refusal()
    refused = await ask(providers[wire], "algo prohibido")
    after = await ask(providers[wire], "algo normal")
    assert refused.refused is True and refused.tool_calls == ()
    assert after.refused is False and after.text == "Respuesta a: algo normal"


async def test_text_scripted_with_a_tool_call_comes_with_it(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    llm.reply_with_tool_call("handoff", {}, text="Te comunico con Mari.")
    reply = await ask(providers["anthropic"], "hola", tools=(HANDOFF_TOOL,))
    assert (reply.text, reply.handoff_reason) == (
        "Te comunico con Mari.",
        "the model asked for a person",
    )


async def test_scripted_http_answers_still_come_first(
    llm: FakeLLM, providers: dict[str, LLMProvider]
) -> None:
    llm.reply_with_tool_call("handoff", {"reason": "x"})
    llm.script(FakeLLM.error(529, "Overloaded"))
    with pytest.raises(RetryableProviderError):
        await ask(providers["openai"], "hola", tools=(HANDOFF_TOOL,))
    reply = await ask(providers["openai"], "hola", tools=(HANDOFF_TOOL,))
    assert reply.handoff_reason == "x"
