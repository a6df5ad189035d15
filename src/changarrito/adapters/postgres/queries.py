"""Every query of the PostgreSQL adapters, as named blocks of ``queries.sql``.

A block starts with ``-- name: <name>``; the comment lines right after it describe it. Queries
use named parameters (``%(tenant_id)s``), never string formatting.
"""

from __future__ import annotations

import re
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """The named blocks of ``text``: ``{name: sql}``, without the leading comments."""
    parts = _HEADER.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        if name in blocks:
            raise ValueError(f"query {name!r} is defined twice")
        blocks[name] = "\n".join(lines).strip()
    return blocks


QUERIES: dict[str, str] = parse(
    files("changarrito.adapters.postgres").joinpath("queries.sql").read_text(encoding="utf-8")
)
