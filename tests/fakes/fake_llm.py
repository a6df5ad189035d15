"""A fake OpenAI-compatible chat API (``POST …/chat/completions``, ``GET …/models``) on a real
port. By default it answers ``"Respuesta a: <last user message>"``; ``llm.script(Answer(529,
...))`` answers the next calls in order first (an overloaded provider, a rejected key...)."""

from __future__ import annotations

import itertools
from typing import Any

from fakes._server import Answer, FakeServer, Recorded


def reply_for(messages: list[dict[str, Any]]) -> str:
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return f"Respuesta a: {last.get('content', '')}"


class FakeLLM(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._script: list[Answer] = []
        self._ids = itertools.count(1)

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script = list(answers)

    @staticmethod
    def error(status: int, message: str = "fake failure", code: str | None = None) -> Answer:
        return Answer(status, {"error": {"message": message, "type": "api_error", "code": code}})

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.method == "GET" and recorded.path.endswith("/models"):
            return Answer(200, {"object": "list", "data": [{"id": "fake-model"}]})
        if recorded.method != "POST" or not recorded.path.endswith("/chat/completions"):
            return self.error(404, f"no route {recorded.path}")
        with self._lock:
            if self._script:
                return self._script.pop(0)
        body = recorded.body if isinstance(recorded.body, dict) else {}
        text = reply_for(body.get("messages") or [])
        return Answer(
            200,
            {
                "id": f"chatcmpl-fake{next(self._ids)}",
                "object": "chat.completion",
                "model": body.get("model", "fake-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )

    def chats(self) -> list[Recorded]:
        return self.recorded(lambda r: r.path.endswith("/chat/completions"))
