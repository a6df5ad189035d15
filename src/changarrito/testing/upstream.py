"""A fake upstream on ``httpx.MockTransport``: scripted answers, recorded requests, and a
reader of the ``multipart/form-data`` bodies a provider sends (``Form``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True, repr=False)
class FormFile:
    """One file of a multipart form: its name, content type and bytes (not in a ``repr``)."""

    filename: str | None
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return f"FormFile({self.filename!r}, {self.content_type}, {len(self.data):,} bytes)"


@dataclass(frozen=True)
class Form:
    """A ``multipart/form-data`` body read back: plain ``fields`` and ``files``, by name."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FormFile] = field(default_factory=dict)

    @classmethod
    def parse(cls, content_type: str, body: bytes) -> Form:
        """``body`` split on the boundary ``content_type`` names (``ValueError`` when it is
        not a multipart form)."""
        found = re.search(r'boundary="?([^";]+)"?', content_type)
        if not content_type.startswith("multipart/form-data") or not found:
            raise ValueError(f"not a multipart form: {content_type!r}")
        form = cls()
        for chunk in body.split(b"--" + found.group(1).encode())[1:]:
            if chunk.startswith(b"--"):
                break
            head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v for k, v in (x.split(": ", 1) for x in lines if ": " in x)}
            params = dict(re.findall(r'(\w+)="([^"]*)"', headers.get("content-disposition", "")))
            data = data.removesuffix(b"\r\n")
            name = params.get("name", "")
            if "filename" in params:
                form.files[name] = FormFile(params["filename"], headers.get("content-type"), data)
            else:
                form.fields[name] = data.decode()
        return form

    @classmethod
    def of(cls, request: httpx.Request) -> Form:
        """The form ``request`` carried."""
        return cls.parse(request.headers.get("content-type", ""), request.content)


class FakeUpstream:
    """Answers requests in order from ``answers`` (the last one repeats; none: ``200 {}``)
    and records them.

    Each answer is an ``httpx.Response``, a callable ``(request) -> Response`` or an exception
    class to raise. ``.requests`` holds every request, ``.last`` the latest and
    ``.last_json()`` its body as JSON (``.last_form()`` as a multipart ``Form``);
    ``upstream.context(env)`` is a ``ProviderContext``
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

    def last_form(self) -> Form:
        return Form.of(self.last)
