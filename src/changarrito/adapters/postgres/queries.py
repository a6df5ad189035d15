"""Every query of the PostgreSQL adapters: the named blocks of this package's ``.sql`` files.

Each ``.sql`` file next to this module (``queries.sql``, ``queue.sql``, ``messages.sql``...;
not the migrations) is parsed once, at import, into the one mapping ``QUERIES``. A block
starts with ``-- name: <name>``; the comment lines right after it describe it. A name is
defined once across all the files: a second definition fails the import. Queries use named
parameters (``%(tenant_id)s``), never string formatting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


class DuplicateQuery(ValueError):
    """Two blocks of the SQL files have the same name."""


def load(sources: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The named blocks of every ``(file name, text)`` in ``sources``, in one mapping
    (``{name: sql}``, without the leading comments); ``DuplicateQuery`` when a name is
    defined twice, in one file or in two."""
    blocks: dict[str, str] = {}
    defined_in: dict[str, str] = {}
    for source, text in sources:
        parts = _HEADER.split(text)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in blocks:
                raise DuplicateQuery(
                    f"query {name!r} is defined twice ({defined_in[name]} and {source})"
                )
            lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
            blocks[name] = "\n".join(lines).strip()
            defined_in[name] = source
    return blocks


def load_package(package: str) -> dict[str, str]:
    """``load`` of every ``.sql`` file directly inside ``package`` (not its subfolders)."""
    folder = files(package)
    found = sorted(f.name for f in folder.iterdir() if f.name.endswith(".sql") and f.is_file())
    return load((name, folder.joinpath(name).read_text(encoding="utf-8")) for name in found)


QUERIES: dict[str, str] = load_package("changarrito.adapters.postgres")
