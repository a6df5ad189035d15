"""Bad input on the command line: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

CLI = [sys.executable, "-m", "changarrito.entrypoints.cli"]
GOOD_RING = "k1:" + "A" * 43 + "="


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHANGARRITO_", "DATABASE_URL", "JWT_"))
    }
    return subprocess.run(
        [*CLI, *args], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("changarrito: ")
    return lines[0]


@pytest.mark.parametrize(
    ("ring", "expected"),
    [
        ("garbage", "CHANGARRITO_ENCRYPTION_KEYS"),
        ("k1:not-base64!!", "CHANGARRITO_ENCRYPTION_KEYS"),
        ("k1:" + "QUJD", "CHANGARRITO_ENCRYPTION_KEYS"),  # 3 bytes, not 32
    ],
)
def test_a_malformed_key_ring_stops_with_one_line_naming_it(ring: str, expected: str) -> None:
    line = _one_clear_line(
        _run(
            "migrate", DATABASE_URL="postgresql://u@127.0.0.1:1/x", CHANGARRITO_ENCRYPTION_KEYS=ring
        )
    )
    assert expected in line
    assert ring.split(":", 1)[-1] not in line or len(ring) < 8


def test_an_external_database_without_a_key_ring_stops_with_one_line() -> None:
    line = _one_clear_line(_run("migrate", DATABASE_URL="postgresql://u@127.0.0.1:1/x"))
    assert "CHANGARRITO_ENCRYPTION_KEYS is not set" in line


def test_an_unreachable_database_url_stops_with_one_line_and_no_password() -> None:
    line = _one_clear_line(
        _run(
            "tenants",
            "list",
            DATABASE_URL="postgresql://app:hunter2secret@127.0.0.1:1/shop",
            CHANGARRITO_ENCRYPTION_KEYS=GOOD_RING,
        )
    )
    assert "hunter2secret" not in line
    assert "127.0.0.1" in line


def test_an_unknown_cipher_stops_with_one_line() -> None:
    line = _one_clear_line(_run("plugins", CHANGARRITO_CIPHER="rot13"))
    assert "CHANGARRITO_CIPHER" in line


def test_tokens_need_a_jwt_secret_with_an_external_database() -> None:
    line = _one_clear_line(
        _run(
            "tokens",
            "issue",
            "--tenant",
            str(uuid.uuid4()),
            DATABASE_URL="postgresql://u@127.0.0.1:1/x",
            CHANGARRITO_ENCRYPTION_KEYS=GOOD_RING,
        )
    )
    assert "JWT_SECRET" in line


def test_an_unknown_tenant_id_is_one_clear_line(pg_admin_url: str, database_url: str) -> None:
    missing = str(uuid.uuid4())
    result = _run(
        "tenants",
        "delete",
        missing,
        DATABASE_URL=database_url,
        CHANGARRITO_ENCRYPTION_KEYS=GOOD_RING,
    )
    assert _one_clear_line(result) == f"changarrito: no tenant {missing}"


@pytest.mark.parametrize(
    ("role", "env", "expected"),
    [
        ("backend", {}, "INTERNAL_API_KEY is not set"),
        ("whatsapp", {"INTERNAL_API_KEY": "k"}, "BACKEND_URL is not set"),
        ("whatsapp", {"BACKEND_URL": "http://127.0.0.1:9"}, "INTERNAL_API_KEY is not set"),
    ],
)
def test_a_role_missing_its_settings_stops_with_one_line(
    role: str, env: dict[str, str], expected: str
) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("INTERNAL_API_KEY", "BACKEND_URL")}
    result = subprocess.run(
        [*CLI, "serve", "--role", role, "--port", "9"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert expected in _one_clear_line(result)
