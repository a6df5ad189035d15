"""The one SQL loader: every ``.sql`` file of the Postgres adapters, parsed once, each name once."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from changarrito.adapters.postgres.notify import CHANGES_CHANNEL, INBOUND_CHANNEL
from changarrito.adapters.postgres.queries import QUERIES, DuplicateQuery, load, load_package

FILE = """\
-- What the file is about.

-- name: first
-- Describes the first query.
SELECT 1
    -- an indented comment is part of the query
FROM t

-- name: second
SELECT 2;
"""


def test_a_file_becomes_named_queries_without_their_leading_comments() -> None:
    assert load([("a.sql", FILE)]) == {
        "first": "SELECT 1\n    -- an indented comment is part of the query\nFROM t",
        "second": "SELECT 2;",
    }


def test_a_name_defined_twice_in_one_file_is_an_error() -> None:
    with pytest.raises(DuplicateQuery, match=r"'first' is defined twice \(a.sql and a.sql\)"):
        load([("a.sql", FILE + "\n-- name: first\nSELECT 3\n")])


def test_a_name_defined_in_two_files_is_an_error_naming_both() -> None:
    with pytest.raises(DuplicateQuery, match=r"'second' is defined twice \(a.sql and b.sql\)"):
        load([("a.sql", FILE), ("b.sql", "-- name: second\nSELECT 4\n")])


@pytest.fixture
def sql_package(tmp_path: Path) -> Iterator[Path]:
    """An importable package of ``.sql`` files (with a migrations-like subfolder)."""
    folder = tmp_path / "sql_package_for_test"
    (folder / "migrations").mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "migrations" / "0001.sql").write_text("-- name: first\nSELECT 'ignored'\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield folder
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("sql_package_for_test", None)


def test_a_package_loads_every_sql_file_beside_its_modules_but_not_its_subfolders(
    sql_package: Path,
) -> None:
    (sql_package / "a.sql").write_text(FILE)
    (sql_package / "b.sql").write_text("-- name: third\nSELECT 3\n")
    assert sorted(load_package("sql_package_for_test")) == ["first", "second", "third"]


def test_a_package_whose_files_define_a_name_twice_does_not_load(sql_package: Path) -> None:
    (sql_package / "a.sql").write_text(FILE)
    (sql_package / "b.sql").write_text("-- name: first\nSELECT 3\n")
    with pytest.raises(DuplicateQuery, match=r"'first' is defined twice \(a.sql and b.sql\)"):
        load_package("sql_package_for_test")


def test_every_sql_file_of_the_adapters_is_in_the_one_mapping() -> None:
    for name in ("create_tenant", "claim_batch", "insert_inbound", "queue_stats"):
        assert name in QUERIES
    for name in ("insert_link", "record_audit", "whatsapp_credentials", "pgcrypto_encrypt"):
        assert name in QUERIES
    assert not any(sql.startswith("--") or not sql for sql in QUERIES.values())


def test_the_notifying_queries_use_the_channels_the_listeners_listen_on() -> None:
    assert f"pg_notify('{CHANGES_CHANNEL}'" in QUERIES["notify"]
    assert f"pg_notify('{INBOUND_CHANNEL}'" in QUERIES["notify_inbound"]
