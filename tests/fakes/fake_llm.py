"""A fake LLM API on a real port: OpenAI's Chat Completions (``POST …/chat/completions``) and
Anthropic's Messages (``POST …/messages``), and ``GET …/models`` for both.

By default it answers ``"Respuesta a: <last user message>"`` in the format of the route asked.
``llm.script(Answer(529, ...))`` answers the next calls in order first (an overloaded provider,
a rejected key...). ``llm.reply_with_tool_call("handoff", {"reason": "quiere un reembolso"},
when="Quiero mi dinero")`` makes the model call a tool once, and ``llm.reply_with_refusal(...)``
makes it decline once, in either wire format; like a real model, a tool call is only made on a
request that offered that tool (``FakeLLM.tools_offered(request)`` lists them).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from fakes._server import Answer, FakeServer, Recorded

CHAT_PATHS = ("/chat/completions", "/messages")


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


class FakeLLM(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._script: list[Answer] = []
        self._replies: list[_Scripted] = []
        self._ids = itertools.count(1)

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
