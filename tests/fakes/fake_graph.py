"""A fake of Meta's Graph API messages endpoint on a real port, as Meta's Cloud API messages
reference describes sending and its errors.

``POST /{version}/{phone_number_id}/messages`` answers a text message with a new wamid and a
read receipt with ``{"success": true}``, unless the test scripted something else:
``graph.script_sends(FakeGraph.error(130429), Answer(200, ...))`` answers the next sends in
that order, then goes back to accepting. A request whose client hung up before the answer was
ready (a killed worker) is recorded as not answered, like a send Meta never accepted.

It also answers the two reads that confirm a tenant's claim on its number, for the numbers a
test said a token can read (``graph.own(token, waba_id, *phone_number_ids)``):
``GET /{version}/{phone_number_id}`` (the number's node) and ``GET
/{version}/{waba_id}/phone_numbers`` (``{"data": [{"id"}...]}``); anything else is Graph's
code 100 ("does not exist, cannot be loaded due to missing permissions").
"""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import urlsplit

from fakes._server import Answer, FakeServer, Recorded

_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<pnid>\d+)/messages$")
_NODE = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<id>\d+)(?P<edge>/phone_numbers)?$")


class FakeGraph(FakeServer):
    def __init__(self, version: str = "v23.0") -> None:
        super().__init__()
        self.version = version
        self.send_delay = 0.0
        self._sends: list[Answer] = []
        self._reads: list[Answer] = []
        self._ids = itertools.count(1)
        #: (token, phone number id) -> the business account it is in, as Graph lets it read.
        self._readable: dict[tuple[str, str], str] = {}

    def own(self, token: str, waba_id: str, *phone_number_ids: str) -> None:
        """``token`` can read these numbers, in business account ``waba_id``, and the account."""
        with self._lock:
            for pnid in phone_number_ids:
                self._readable[(token, pnid)] = waba_id

    @staticmethod
    def error(code: int, status: int = 400, message: str = "fake Graph error") -> Answer:
        return Answer(
            status,
            {
                "error": {
                    "message": f"(#{code}) {message}",
                    "type": "OAuthException",
                    "code": code,
                    "error_data": {"messaging_product": "whatsapp", "details": message},
                    "fbtrace_id": "AfakeTrace",
                }
            },
        )

    def script_sends(self, *answers: Answer) -> None:
        with self._lock:
            self._sends = list(answers)

    def script_reads(self, *answers: Answer) -> None:
        with self._lock:
            self._reads = list(answers)

    def answer(self, recorded: Recorded) -> Answer:
        if recorded.method == "GET":
            return self._read(recorded)
        match = _PATH.match(recorded.path)
        if recorded.method != "POST" or match is None or match["version"] != self.version:
            return self.error(100, 404, f"Unknown path {recorded.path}")
        body = recorded.body if isinstance(recorded.body, dict) else {}
        with self._lock:
            if body.get("status") == "read":
                return self._reads.pop(0) if self._reads else Answer(200, {"success": True})
            if self._sends:
                return self._sends.pop(0)
        to = body.get("to") or body.get("recipient") or ""
        return Answer(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": str(to).lstrip("+")}],
                "messages": [{"id": f"wamid.FAKE{next(self._ids):06d}"}],
            },
            delay=self.send_delay,
        )

    def _read(self, recorded: Recorded) -> Answer:
        match = _NODE.match(urlsplit(recorded.path).path)
        token = recorded.headers.get("authorization", "").removeprefix("Bearer ")
        missing = self.error(100, 400, "Unsupported get request: does not exist or no permission")
        if match is None or match["version"] != self.version:
            return missing
        with self._lock:
            readable = dict(self._readable)
        if match["edge"]:
            listed = [p for (t, p), w in readable.items() if t == token and w == match["id"]]
            if not listed:
                return missing
            return Answer(200, {"data": [{"id": p} for p in listed]})
        if (token, match["id"]) not in readable:
            return missing
        return Answer(200, {"id": match["id"], "display_phone_number": "+52 55 0000 0000"})

    # What the tests look at ---------------------------------------------------------------

    def sends(self, *, accepted_only: bool = True) -> list[Recorded]:
        """Text messages received (by default only those answered with a wamid)."""

        def is_send(r: Recorded) -> bool:
            if not (isinstance(r.body, dict) and r.body.get("type") == "text"):
                return False
            return not accepted_only or (r.answered and r.status == 200)

        return self.recorded(is_send)

    def reads(self) -> list[Recorded]:
        return self.recorded(lambda r: isinstance(r.body, dict) and r.body.get("status") == "read")

    def replies_to(self, wamid: str) -> list[Recorded]:
        """Accepted text messages quoting ``wamid`` (``context.message_id``)."""
        return [s for s in self.sends() if quoted(s) == wamid]


def quoted(recorded: Recorded) -> str | None:
    context: Any = recorded.body.get("context") if isinstance(recorded.body, dict) else None
    return context.get("message_id") if isinstance(context, dict) else None


def phone_number_id(recorded: Recorded) -> str | None:
    match = _PATH.match(recorded.path)
    return match["pnid"] if match else None
