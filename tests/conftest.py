"""Shared database fixtures for every test suite.

Which PostgreSQL:
- ``CHANGARRITO_TEST_DATABASE_URL`` (an admin-capable URL, e.g.
  ``postgresql://postgres@127.0.0.1:5432/postgres``) when set;
- otherwise an embedded PostgreSQL (``pgserver``) started once per session in a temp folder,
  so ``make test`` works on a machine with no PostgreSQL. It has no pgcrypto.

Fixtures:
- ``pg_admin_url`` (session): that server's admin URL.
- ``database_url`` (session): a fresh database ``chg_test_<random>``, migrated once, dropped at
  the end. Tests share it, so each test creates its own tenants.
- ``fresh_database_url``: a brand-new empty database (no migrations), dropped afterwards.
- ``pool``: an open pool on ``database_url``.
- ``keyring`` / ``cipher``: a generated ``KeyRing`` and an ``AesGcmCipher`` on it.
- ``pgcrypto``: skips the test when the server has no pgcrypto (fails instead when
  ``CHANGARRITO_TEST_REQUIRE_PGCRYPTO=1``); the ``@pytest.mark.pgcrypto`` marker does the same.
- ``pgcrypto_cipher``: a ``PgcryptoCipher`` on ``pool`` and ``keyring`` (implies ``pgcrypto``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.crypto.pgcrypto import PgcryptoCipher
from changarrito.adapters.postgres.migrate import migrate
from changarrito.adapters.postgres.pool import Pool, open_pool


def with_database(url: str, dbname: str) -> str:
    """``url`` pointing at another database on the same server."""
    if "://" in url:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + dbname))
    return make_conninfo(url, dbname=dbname)


def _create_database(admin_url: str) -> str:
    name = f"chg_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def _run_async(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs a coroutine to completion on a private loop in a thread (no clash with the
    per-test loops of pytest-asyncio)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("CHANGARRITO_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, which would pull the data
    # folder from under a server still used by another concurrent session.
    datadir = tempfile.mkdtemp(prefix="changarrito-test-pg-")
    try:
        with warnings.catch_warnings():  # platformdirs complains about XDG_RUNTIME_DIR in CI
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(datadir, cleanup_mode="stop")
            uri = server.get_uri()
        try:
            yield uri
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture(scope="session")
def pgcrypto_available(pg_admin_url: str) -> bool:
    with psycopg.connect(pg_admin_url) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto')"
        ).fetchone()
    return bool(row and row[0])


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str, pgcrypto_available: bool) -> Iterator[str]:
    name = _create_database(pg_admin_url)
    url = with_database(pg_admin_url, name)

    async def setup() -> None:
        pool = await open_pool(url, min_size=1, max_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()

    try:
        _run_async(setup)
        if pgcrypto_available:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        yield url
    finally:
        _drop_database(pg_admin_url, name)


@pytest.fixture
def fresh_database_url(pg_admin_url: str) -> Iterator[str]:
    name = _create_database(pg_admin_url)
    try:
        yield with_database(pg_admin_url, name)
    finally:
        _drop_database(pg_admin_url, name)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await open_pool(database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.generate("k1")


@pytest.fixture
def cipher(keyring: KeyRing) -> AesGcmCipher:
    return AesGcmCipher(keyring)


@pytest.fixture
def pgcrypto(pgcrypto_available: bool) -> None:
    """Skips (or, with ``CHANGARRITO_TEST_REQUIRE_PGCRYPTO=1``, fails) without pgcrypto."""
    if pgcrypto_available:
        return
    message = (
        "the test PostgreSQL has no pgcrypto extension (the embedded one never has): set "
        "CHANGARRITO_TEST_DATABASE_URL to a server with pgcrypto"
    )
    if os.environ.get("CHANGARRITO_TEST_REQUIRE_PGCRYPTO") == "1":
        pytest.fail(message + " (CHANGARRITO_TEST_REQUIRE_PGCRYPTO=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def pgcrypto_cipher(pgcrypto: None, pool: Pool, keyring: KeyRing) -> PgcryptoCipher:
    return PgcryptoCipher(pool, keyring)


@pytest.fixture(autouse=True)
def _pgcrypto_marker(request: pytest.FixtureRequest) -> None:
    """Gives tests marked ``@pytest.mark.pgcrypto`` the ``pgcrypto`` fixture's skip/fail."""
    if request.node.get_closest_marker("pgcrypto") is not None:
        request.getfixturevalue("pgcrypto")
