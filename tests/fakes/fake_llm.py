"""A fake LLM API on a real port: OpenAI's Chat Completions (``POST …/chat/completions``) and
Anthropic's Messages (``POST …/messages``), ``GET …/models`` for both, and OpenAI's
transcriptions (``POST …/audio/transcriptions``, multipart, also under Azure's
``/openai/deployments/<name>/``).

By default it answers ``"Respuesta a: <last user message>"`` in the format of the route asked.
``llm.script(Answer(529, ...))`` answers the next calls in order first (an overloaded provider,
a rejected key...). ``llm.reply_with_tool_call("handoff", {"reason": "quiere un reembolso"},
when="Quiero mi dinero")`` makes the model call a tool once, and ``llm.reply_with_refusal(...)``
makes it decline once, in either wire format; like a real model, a tool call is only made on a
request that offered that tool (``FakeLLM.tools_offered(request)`` lists them).
``FakeLLM.content_parts(request)`` / ``llm.last_content_parts()`` give the customer's last turn
as sent (a picture arrives as an OpenAI ``image_url`` part or an Anthropic ``image`` block).

Transcriptions answer ``{"text", "usage": {"type": "duration", "seconds"}}``: the text is
``FakeLLM.transcript_for(audio bytes)`` unless ``llm.set_transcript(text)`` fixed one, and
``llm.fail_transcription(401)`` (or ``script_transcription(...)``) answers the next ones first;
``llm.script(...)`` is for chat requests only. ``llm.transcriptions()`` lists what was received
(model, file name, content type, bytes, language).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from changarrito.testing.upstream import Form
from fakes._server import Answer, FakeServer, Recorded

CHAT_PATHS = ("/chat/completions", "/messages")
TRANSCRIPTION_PATH = "/audio/transcriptions"
#: Bytes per second of the fake's audio (a WhatsApp voice note is Opus at about 32 kbit/s).
AUDIO_BYTES_PER_SECOND = 4000


def reply_for(messages: list[dict[str, Any]]) -> str:
    return f"Respuesta a: {last_user_text(messages)}"


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The last ``user`` message's text (a string, or Anthropic's text blocks joined)."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = last.get("content", "")
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return str(content)


@dataclass
class _Scripted:
    """One scripted answer of the model: a call of ``tool`` or, with ``tool=None``, a refusal."""

    tool: str | None
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    #: The last user message it answers; ``None``: the next request.
    when: str | None = None

    def fits(self, user_text: str, offered: list[str]) -> bool:
        if self.when is not None and self.when != user_text:
            return False
        return self.tool is None or self.tool in offered


@dataclass(frozen=True)
class Transcription:
    """One transcription request as the fake read its form (``model`` and ``language`` are
    ``None`` when not sent, as on Azure, whose URL names the deployment)."""

    path: str
    model: str | None
    filename: str | None
    content_type: str | None
    data: bytes = field(repr=False)
    language: str | None
    response_format: str | None
    headers: dict[str, str] = field(repr=False)


class FakeLLM(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._script: list[Answer] = []
        self._replies: list[_Scripted] = []
        self._ids = itertools.count(1)
        self._transcriptions: list[Transcription] = []
        self._transcription_script: list[Answer] = []
        self._transcript: tuple[str, float | None] | None = None
        # The base server decodes bodies as JSON or text; a multipart audio needs its bytes.
        self._raw = threading.local()
        self._server.RequestHandlerClass = _keeping_raw_bodies(
            self._server.RequestHandlerClass, self._raw
        )

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script = list(answers)

    def reply_with_tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        when: str | None = None,
        text: str = "",
    ) -> None:
        """The model calls tool ``name`` with ``arguments``, once: on the next chat request
        that offered that tool and, with ``when``, whose last user message is ``when``.
        ``text`` goes with the call (OpenAI's ``content``, stays ``null`` when empty;
        Anthropic's text block before the ``tool_use`` block)."""
        with self._lock:
            self._replies.append(_Scripted(name, dict(arguments or {}), text, when))

    def reply_with_refusal(
        self, text: str = "I can't help with that.", *, when: str | None = None
    ) -> None:
        """The model declines, once (OpenAI ``message.refusal``, Anthropic ``stop_reason:
        "refusal"``): on the next chat request or, with ``when``, the next whose last user
        message is ``when``."""
        with self._lock:
            self._replies.append(_Scripted(None, {}, text, when))

    def clear_replies(self) -> None:
        """Forgets the tool calls and refusals scripted and not made yet."""
        with self._lock:
            self._replies.clear()

    # Transcriptions ----------------------------------------------------------------------------

    @staticmethod
    def transcript_for(audio: bytes) -> str:
        """The text answered for ``audio`` when no ``set_transcript`` fixed one."""
        return f"nota de voz {hashlib.sha256(audio).hexdigest()[:8]}"

    @staticmethod
    def seconds_for(audio: bytes) -> float:
        """The ``usage.seconds`` answered for ``audio`` (its length at 32 kbit/s)."""
        return round(max(len(audio), 1) / AUDIO_BYTES_PER_SECOND, 3)

    def set_transcript(self, text: str | None, *, seconds: float | None = None) -> None:
        """Every transcription answers ``text`` (and ``seconds``, default ``seconds_for``)
        from now on; ``None``: back to ``transcript_for``."""
        with self._lock:
            self._transcript = None if text is None else (text, seconds)

    def script_transcription(self, *answers: Answer) -> None:
        """The next transcription requests get ``answers``, in order (then the usual one)."""
        with self._lock:
            self._transcription_script = list(answers)

    def fail_transcription(
        self, status: int, message: str = "fake failure", *, code: str | None = None, times: int = 1
    ) -> None:
        """The next ``times`` transcriptions fail with ``status`` (401 rejected key, 429 rate
        limit, ``code="insufficient_quota"`` out of money...), after any already queued."""
        with self._lock:
            self._transcription_script.extend([self.error(status, message, code)] * times)

    def transcriptions(self) -> list[Transcription]:
        """Every transcription request received (failed ones too), in order."""
        with self._lock:
            return list(self._transcriptions)

    def last_transcription(self) -> Transcription:
        found = self.transcriptions()
        assert found, "the fake LLM received no transcription request"
        return found[-1]

    def _transcribe(self, recorded: Recorded) -> Answer:
        raw: bytes = getattr(self._raw, "body", b"")
        try:
            form = Form.parse(recorded.headers.get("content-type", ""), raw)
        except ValueError:
            return self.error(400, "expected a multipart/form-data body", "invalid_request")
        file = form.files.get("file")
        if file is None:
            return self.error(400, "file is required", "invalid_request")
        with self._lock:
            self._transcriptions.append(
                Transcription(
                    path=recorded.path,
                    model=form.fields.get("model"),
                    filename=file.filename,
                    content_type=file.content_type,
                    data=file.data,
                    language=form.fields.get("language"),
                    response_format=form.fields.get("response_format"),
                    headers=dict(recorded.headers),
                )
            )
            if self._transcription_script:
                return self._transcription_script.pop(0)
            text, seconds = self._transcript or (self.transcript_for(file.data), None)
        usage = {
            "type": "duration",
            "seconds": self.seconds_for(file.data) if seconds is None else seconds,
        }
        return Answer(200, {"text": text, "usage": usage})

    # Chat ---------------------------------------------------------------------------------------

    @staticmethod
    def content_parts(recorded: Recorded) -> list[dict[str, Any]]:
        """The last customer (``user``) turn of a chat request as sent: OpenAI's parts
        (``image_url``, ``file``, ``text``) or Anthropic's blocks (``image``, ``document``,
        ``text``); a plain string is one ``text`` part."""
        body = recorded.body if isinstance(recorded.body, dict) else {}
        messages = body.get("messages") or []
        last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        content = last.get("content", "")
        if isinstance(content, list):
            return [p for p in content if isinstance(p, dict)]
        return [{"type": "text", "text": str(content)}]

    def last_content_parts(self) -> list[dict[str, Any]]:
        """``content_parts`` of the latest chat request."""
        chats = self.chats()
        assert chats, "the fake LLM received no chat request"
        return self.content_parts(chats[-1])

    @staticmethod
    def error(status: int, message: str = "fake failure", code: str | None = None) -> Answer:
        return Answer(status, {"error": {"message": message, "type": "api_error", "code": code}})

    @staticmethod
    def tools_offered(recorded: Recorded) -> list[str]:
        """The names of the tools a chat request offered (either wire format), in order."""
        body = recorded.body if isinstance(recorded.body, dict) else {}
        names = []
        for tool in body.get("tools") or []:
            function = tool.get("function") if isinstance(tool, dict) else None
            name = function.get("name") if isinstance(function, dict) else tool.get("name")
            names.append(str(name))
        return names

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.method == "GET" and recorded.path.endswith("/models"):
            return Answer(200, {"object": "list", "data": [{"id": "fake-model"}]})
        path = recorded.path.split("?", 1)[0]
        if recorded.method == "POST" and path.endswith(TRANSCRIPTION_PATH):
            return self._transcribe(recorded)
        if recorded.method != "POST" or not path.endswith(CHAT_PATHS):
            return self.error(404, f"no route {recorded.path}")
        anthropic = path.endswith("/messages")
        body = recorded.body if isinstance(recorded.body, dict) else {}
        user_text = last_user_text(body.get("messages") or [])
        offered = self.tools_offered(recorded)
        with self._lock:
            if self._script:
                return self._script.pop(0)
            scripted = next((r for r in self._replies if r.fits(user_text, offered)), None)
            if scripted is not None:
                self._replies.remove(scripted)
        n = next(self._ids)
        model = body.get("model", "fake-model")
        if anthropic:
            return Answer(200, self._anthropic(n, model, user_text, scripted))
        return Answer(200, self._openai(n, model, user_text, scripted))

    @staticmethod
    def _openai(n: int, model: str, user_text: str, scripted: _Scripted | None) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": f"Respuesta a: {user_text}"}
        finish_reason = "stop"
        if scripted is not None and scripted.tool is None:
            message = {"role": "assistant", "content": None, "refusal": scripted.text}
        elif scripted is not None:
            arguments = json.dumps(scripted.arguments, ensure_ascii=False)
            call = {
                "id": f"call_fake{n}",
                "type": "function",
                "function": {"name": scripted.tool, "arguments": arguments},
            }
            message = {"role": "assistant", "content": scripted.text or None, "tool_calls": [call]}
            finish_reason = "tool_calls"
        return {
            "id": f"chatcmpl-fake{n}",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    @staticmethod
    def _anthropic(n: int, model: str, user_text: str, scripted: _Scripted | None) -> Any:
        content: list[dict[str, Any]] = [{"type": "text", "text": f"Respuesta a: {user_text}"}]
        stop_reason = "end_turn"
        if scripted is not None:
            content = [{"type": "text", "text": scripted.text}] if scripted.text else []
            stop_reason = "refusal"
        if scripted is not None and scripted.tool is not None:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_fake{n}",
                    "name": scripted.tool,
                    "input": scripted.arguments,
                }
            )
            stop_reason = "tool_use"
        return {
            "id": f"msg_fake{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }

    def chats(self) -> list[Recorded]:
        """Every chat request received, in either wire format."""
        return self.recorded(lambda r: r.path.split("?", 1)[0].endswith(CHAT_PATHS))


def _keeping_raw_bodies(
    handler: type[BaseHTTPRequestHandler], store: threading.local
) -> type[BaseHTTPRequestHandler]:
    """``handler`` that also keeps each POST body's bytes in ``store.body`` (per thread: the
    server answers a connection's requests in order on one thread) before serving it."""

    class KeepingRawBodies(handler):  # type: ignore[misc,valid-type]
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            store.body = raw
            connection, self.rfile = self.rfile, io.BytesIO(raw)
            try:
                super().do_POST()
            finally:
                self.rfile = connection

    return KeepingRawBodies


def slow_answer(text: str, delay: float) -> Answer:
    """An OpenAI chat answer with ``text`` after ``delay`` seconds (``FakeLLM.script`` it):
    what keeps a worker busy writing a reply while a test kills it or writes again."""
    body = {
        "id": "chatcmpl-slow",
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
    }
    return Answer(200, body, delay=delay)
