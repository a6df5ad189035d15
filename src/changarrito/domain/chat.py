"""The wire shapes of a chat with an LLM: messages (and the tools offered) in, a reply (with
its usage and tool calls) out.

Pure records, shared by the ports (``ports.ChatBackend``, ``ports.MessageLog``...), the use
cases (``llm.Responder``, ``pipeline.Pipeline``) and the providers (``LLMProvider``); plugin
authors get them from ``changarrito.plugin``. ``LLMConfig`` is the non-secret config every LLM
provider shares. ``HANDOFF_TOOL`` is the built-in tool the pipeline offers: the model calls it
when a person is needed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

#: What an ``Attachment`` is, as a model reads it: a picture, or a PDF document.
AttachmentKind = Literal["image", "pdf"]


class Attachment(msgspec.Struct, frozen=True):
    """A picture or a PDF the customer sent, for a model that reads it
    (``LLMProvider.reads``): its bytes, their MIME type (``image/jpeg``, ``application/pdf``)
    and the file's name when it has one. The bytes never appear in a ``repr``."""

    kind: AttachmentKind
    mime_type: str
    data: bytes
    filename: str | None = None

    def __repr__(self) -> str:
        name = f", filename={self.filename!r}" if self.filename else ""
        return f"Attachment({self.kind}, {self.mime_type}, {len(self.data):,} bytes{name})"

    def base64(self) -> str:
        """The bytes in standard base64 (Anthropic's ``source.data``)."""
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        """``data:<mime>;base64,<bytes>`` (OpenAI's ``image_url.url`` and ``file_data``)."""
        return f"data:{self.mime_type};base64,{self.base64()}"


class ChatMessage(msgspec.Struct, frozen=True):
    """One turn of the chat. A customer's turn may carry ``attachments`` (only for a model
    that reads them: the host never sends one to a provider whose ``reads`` leaves it out);
    ``content`` is then the caption, possibly empty."""

    role: Literal["system", "user", "assistant"]
    content: str
    attachments: tuple[Attachment, ...] = ()


def alternating(turns: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``turns`` as every chat API accepts them: system messages first, then a customer
    (``user``) turn, then turns that alternate. Assistant turns before the first customer turn
    are dropped (a history cut at its limit can start with a reply, which Anthropic-style APIs
    refuse), and consecutive turns of one role are joined into one, in order, separated by a
    blank line (two messages in a row, or a reply in two parts), their attachments kept in
    order."""
    system = [t for t in turns if t.role == "system"]
    chat: list[ChatMessage] = []
    for turn in turns:
        if turn.role == "system" or (not chat and turn.role != "user"):
            continue
        if chat and chat[-1].role == turn.role:
            joined = "\n\n".join(t for t in (chat[-1].content, turn.content) if t)
            chat[-1] = ChatMessage(
                role=turn.role,
                content=joined,
                attachments=(*chat[-1].attachments, *turn.attachments),
            )
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
    #: The kinds of attachments the model was sent in this call (filled in by the host, as
    #: ``source``): what the call is billed for besides tokens.
    read: tuple[AttachmentKind, ...] = ()

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


class Audio(msgspec.Struct, frozen=True):
    """A voice note or audio file to transcribe: its bytes, MIME type (WhatsApp voice notes
    are ``audio/ogg`` with Opus) and a file name whose extension says the format (``.ogg``),
    as transcription APIs want one."""

    data: bytes
    mime_type: str
    filename: str

    def __repr__(self) -> str:
        return f"Audio({self.mime_type}, {len(self.data):,} bytes, {self.filename!r})"


class Transcript(msgspec.Struct, frozen=True):
    """What a provider's ``transcribe`` heard. ``seconds``: the audio's length when the
    provider reports it (what transcription is billed by); ``usage``: its tokens when it
    bills by tokens instead. ``source`` (tenant/platform) is filled in by the host."""

    text: str
    model: str
    provider: str
    seconds: float | None = None
    usage: Usage | None = None
    source: str | None = None


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
    #: Whether the model reads pictures (``None``: the provider's default for the model's
    #: family, ``LLMProvider.vision_default``).
    vision: bool | None = None
    #: Whether the model reads PDF documents (``None``: the provider's default for the
    #: model's family, ``LLMProvider.documents_default``).
    documents: bool | None = None
    #: The model that transcribes voice notes (``None``: the provider's
    #: ``default_transcription_model``) and the language to expect (ISO-639-1, ``es``).
    transcription_model: str | None = None
    transcription_language: Annotated[str, msgspec.Meta(pattern="^[a-z]{2}$")] | None = None
