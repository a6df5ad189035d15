"""Cutting a reply into WhatsApp text messages: Meta's length limit and where to cut."""

from __future__ import annotations

import re

#: Meta's limit on a text message body.
MAX_TEXT_CHARS = 4096

_SENTENCE_END = re.compile(r"[.!?…。](?=\s)")
#: The end of a whole sentence or line inside a text, with what may close it (a quote, a
#: bracket, an emoji) before the next space.
_WHOLE_END = re.compile(r"[.!?…。][\"'»”)\]]*(?=\s|$)|\n")


def whole_sentences(text: str) -> str | None:
    """``text`` up to the end of its last whole sentence or line, for an answer the model
    cut at its output limit; ``None`` when not even one sentence is whole."""
    ends = [m.end() for m in _WHOLE_END.finditer(text)]
    kept = text[: ends[-1]].strip() if ends else ""
    return kept or None


def split_text(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at the last paragraph break,
    else line break, else sentence end, else space that keeps a part at least half full;
    a word longer than that is cut where it must be. Parts are stripped and never empty."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]  # a boundary right after the limit still counts
        cut = _boundary(window, limit)
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if part:
            parts.append(part)
    if rest:
        parts.append(rest)
    return parts


def _boundary(window: str, limit: int) -> int:
    floor = limit // 2
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator, floor)
        if at > 0:
            return at
    ends = [m.end() for m in _SENTENCE_END.finditer(window, floor) if m.end() <= limit]
    if ends:
        return ends[-1]
    at = window.rfind(" ", floor)
    if at > 0:
        return at
    at = window.rfind(" ", 1)
    return at if at > 0 else limit
