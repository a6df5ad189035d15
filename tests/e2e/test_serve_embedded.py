"""The real ``changarrito serve`` process on the embedded PostgreSQL, as a fresh user runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

CLI = [sys.executable, "-m", "changarrito.entrypoints.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHANGARRITO_", "DATABASE_URL", "WHATSAPP_", "JWT_"))
    }
    env["CHANGARRITO_HOME"] = str(home)
    env["INTERNAL_API_KEY"] = "e2e-internal-key"
    return env


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            out = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"serve exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    out = proc.stderr.read().decode() if proc.stderr else ""
    pytest.fail(f"serve not ready after {timeout}s:\n{out}")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode()


def test_serve_starts_on_the_embedded_postgres_and_is_ready_fast_on_a_second_start(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    env = _clean_env(home)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*CLI, "serve", "--port", str(port)]

    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_ready(first, url, timeout=60)
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        schema = httpx.get(url + "/schema/openapi.json")
        assert schema.status_code == 200
        assert "/ready" in schema.json()["paths"]
    finally:
        log = _stop(first)
    assert first.returncode == 0, log
    assert "keyring.generated" in log  # the operator is told where the key ring is
    keyring = home / "keyring"
    assert keyring.stat().st_mode & 0o777 == 0o600

    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        elapsed = _wait_ready(second, url, timeout=30)
    finally:
        log = _stop(second)
    assert elapsed < 10, f"second start took {elapsed:.1f}s"
    assert "keyring.generated" not in log
    assert not _postgres_running(home / "pgdata"), "serve left the embedded PostgreSQL running"


def _postgres_running(pgdata: Path) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", f"-D {pgdata}"], capture_output=True)
        if found.returncode != 0:
            return False
        time.sleep(0.2)
    return True


def test_a_tenant_created_by_the_cli_is_listed_and_deleted_on_the_embedded_default(
    tmp_path: Path,
) -> None:
    env = _clean_env(tmp_path / "home")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)

    created = run("tenants", "create", "--name", "Abarrotes Lupita", "--json")
    assert created.returncode == 0, created.stderr
    import json

    tenant = json.loads(created.stdout)
    assert tenant["name"] == "Abarrotes Lupita"
    listed = run("tenants", "list")
    assert tenant["id"] in listed.stdout

    # On the embedded default a development JWT secret is generated, so tokens work at once.
    issued = run("tokens", "issue", "--tenant", tenant["id"], "--ttl", "15m")
    assert issued.returncode == 0, issued.stderr
    assert "jwt_secret.generated" in issued.stderr
    secret_file = Path(env["CHANGARRITO_HOME"]) / "jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    claims = jwt.decode(issued.stdout.strip(), secret_file.read_text().strip(), ["HS256"])
    assert claims["tenant_id"] == tenant["id"]
    assert run("tenants", "delete", tenant["id"]).returncode == 0
    gone = run("tenants", "delete", tenant["id"])
    assert gone.returncode == 1
    assert gone.stderr.strip() == f"changarrito: no tenant {tenant['id']}"
