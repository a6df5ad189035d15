"""The wire shapes of a chat with an LLM: messages (and the tools offered) in, a reply (with
its usage and tool calls) out.

Pure records, shared by the ports (``ports.ChatBackend``, ``ports.MessageLog``...), the use
cases (``llm.Responder``, ``pipeline.Pipeline``) and the providers (``LLMProvider``); plugin
authors get them from ``changarrito.plugin``. ``LLMConfig`` is the non-secret config every LLM
provider shares. ``HANDOFF_TOOL`` is the built-in tool the pipeline offers: the model calls it
when a person is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec


class ChatMessage(msgspec.Struct, frozen=True):
    role: Literal["system", "user", "assistant"]
    content: str


def alternating(turns: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``turns`` as every chat API accepts them: system messages first, then a customer
    (``user``) turn, then turns that alternate. Assistant turns before the first customer turn
    are dropped (a history cut at its limit can start with a reply, which Anthropic-style APIs
    refuse), and consecutive turns of one role are joined into one, in order, separated by a
    blank line (two messages in a row, or a reply in two parts)."""
    system = [t for t in turns if t.role == "system"]
    chat: list[ChatMessage] = []
    for turn in turns:
        if turn.role == "system" or (not chat and turn.role != "user"):
            continue
        if chat and chat[-1].role == turn.role:
            chat[-1] = ChatMessage(role=turn.role, content=f"{chat[-1].content}\n\n{turn.content}")
        else:
            chat.append(turn)
    return [*system, *chat]


class Usage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Tool(msgspec.Struct, frozen=True):
    """A function the model may call: ``parameters`` is a JSON Schema object describing its
    arguments (OpenAI's ``function.parameters``, Anthropic's ``input_schema``)."""

    name: str
    description: str
    parameters: dict[str, Any]


class ToolCall(msgspec.Struct, frozen=True):
    """The model asked to call the tool ``name`` with ``arguments`` (always an object: a
    provider turns arguments it cannot read into ``{}``). ``id`` is the provider's id of the
    call (``call_…``, ``toolu_…``), when it gives one."""

    name: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str | None = None


#: Said when the model handed the conversation over without saying why.
HANDOFF_DEFAULT_REASON = "the model asked for a person"

HANDOFF_TOOL = Tool(
    name="handoff",
    description=(
        "Hand the conversation over to a person from the shop. Call it when the customer asks "
        "for a person (a human, an agent, the owner), when you cannot help with what they "
        "ask, or when you must not answer it yourself: complaints, refunds, returns, "
        "problems with an order or a payment, or anything you are unsure about. Do not "
        "promise anything in that case: a person will take over."
    ),
    parameters={
        "type": "object",
        "properties": {
            "reason": {
                "type": "string",
                "description": (
                    "In a few words, why a person is needed (for the shop, not the customer)."
                ),
            }
        },
        "required": ["reason"],
    },
)


class Reply(msgspec.Struct, frozen=True):
    """One LLM answer. ``source`` (tenant/platform) is filled in by the caller that resolved
    the credential, for billing and support."""

    text: str
    model: str
    usage: Usage
    latency_ms: float
    provider: str
    source: str | None = None
    #: The model stopped at its output limit (``finish_reason: length``,
    #: ``stop_reason: max_tokens``): ``text`` may end mid-sentence, even mid-word.
    truncated: bool = False
    #: The tools the model asked to call, in its order (only when tools were offered). The
    #: text may be empty then: that is not an empty answer.
    tool_calls: tuple[ToolCall, ...] = ()
    #: The model declined to answer (OpenAI ``message.refusal`` or ``finish_reason:
    #: content_filter``, Anthropic ``stop_reason: refusal``); ``text`` is whatever it said.
    refused: bool = False

    @property
    def handoff_reason(self) -> str | None:
        """Why the model handed the conversation to a person: the ``reason`` of its first
        ``handoff`` call (``HANDOFF_DEFAULT_REASON`` when blank or missing), else ``None``."""
        call = next((c for c in self.tool_calls if c.name == HANDOFF_TOOL.name), None)
        if call is None:
            return None
        reason = call.arguments.get("reason")
        reason = reason.strip() if isinstance(reason, str) else ""
        return reason or HANDOFF_DEFAULT_REASON


#: Seconds to wait for more messages from the customer before answering (0 to 60).
QuietPeriod = Annotated[float, msgspec.Meta(ge=0, le=60)]
#: Hours a handed-over conversation stays with a person before the LLM answers again (up to
#: 30 days).
IdleHours = Annotated[float, msgspec.Meta(gt=0, le=720)]


class LLMConfig(msgspec.Struct, frozen=True, rename="camel"):
    """Non-secret LLM settings common to every provider."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    system_prompt: str | None = None
    fallback_text: str | None = None
    #: What the customer is told when the conversation is handed to a person.
    handoff_message: str | None = None
    #: The reply, once per conversation, to a message the LLM cannot read (a voice note, a
    #: photo without a caption, a sticker...).
    text_only_reply: str | None = None
    quiet_period_seconds: QuietPeriod | None = None
    handoff_idle_hours: IdleHours | None = None
