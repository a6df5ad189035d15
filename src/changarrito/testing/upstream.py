"""A fake upstream on ``httpx.MockTransport``: scripted answers, recorded requests."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, cast

import httpx

from changarrito.adapters.http import HttpClients
from changarrito.plugins.base import ProviderContext

#: One scripted answer: a response, a handler, or an httpx exception class to raise
#: (``httpx.ReadTimeout``, ``httpx.ConnectError``...).
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response] | type[Exception]


def json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=body, headers=dict(headers or {}))


def text_response(
    status: int, text: str, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, text=text, headers=dict(headers or {}))


class FakeUpstream:
    """Answers requests in order from ``answers`` (the last one repeats; none: ``200 {}``)
    and records them.

    Each answer is an ``httpx.Response``, a callable ``(request) -> Response`` or an exception
    class to raise. ``.requests`` holds every request, ``.last`` the latest and
    ``.last_json()`` its body as JSON; ``upstream.context(env)`` is a ``ProviderContext``
    whose every client goes through it.
    """

    def __init__(self, *answers: Answer) -> None:
        self.answers: list[Answer] = list(answers) or [json_response(200, {})]
        self.requests: list[httpx.Request] = []

    def script(self, *answers: Answer) -> FakeUpstream:
        self.answers = list(answers)
        return self

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, type) and issubclass(answer, Exception):
            if issubclass(answer, httpx.RequestError):
                raise answer("fake upstream failure", request=request)
            raise answer("fake upstream failure")
        if isinstance(answer, httpx.Response):
            return answer
        handler = cast(Callable[[httpx.Request], httpx.Response], answer)
        return handler(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def clients(self) -> HttpClients:
        return HttpClients(transport=self.transport)

    def context(self, env: Mapping[str, str] | None = None) -> ProviderContext:
        return ProviderContext(http=self.clients(), env=dict(env or {}))

    @property
    def last(self) -> httpx.Request:
        assert self.requests, "the fake upstream received no request"
        return self.requests[-1]

    def last_json(self) -> Any:
        return json.loads(self.last.content)
