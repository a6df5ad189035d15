"""Running the real ``changarrito`` server process in tests.

``start_server(role, env)`` (a fixture) launches ``changarrito serve --role ROLE`` on a free
port of 127.0.0.1, waits until ``GET /ready`` answers 200 and returns a ``ServerProcess``. Every
process started through it is stopped when the test ends (SIGTERM to its own process group, then
SIGKILL after a grace period). Each process writes its stderr to a file: a test that fails shows
the stderr of every server it started, and a server that dies or never gets ready fails the test
with its stderr in the message.

The environment of the child is built from scratch (``PATH``, ``HOME``, locale, a private
``CHANGARRITO_HOME``) plus what the test passes: nothing from the developer's shell (a real
``OPENAI_API_KEY``, say) leaks into the process under test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

#: How long a server may take to answer ``/ready`` (it migrates and checks keys first).
READY_TIMEOUT = 30.0
#: How long a server gets to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Environment variables copied from the test runner into the child.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

_SERVERS = pytest.StashKey[list["ServerProcess"]]()


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def changarrito_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("changarrito")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "changarrito.entrypoints.cli"]


@dataclass
class ServerProcess:
    """One running ``changarrito serve``."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    _stderr: object = field(repr=False, default=None)

    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Stops the process (and any workers it forked) and returns its exit code."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=timeout)
        close = getattr(self._stderr, "close", None)
        if close is not None:
            close()
        return self.process.returncode

    def _signal(self, sig: signal.Signals) -> None:
        # The child leads its own process group (start_new_session): signal the group, by the
        # id of the process we started, so uvicorn's worker processes go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


def child_env(extra: Mapping[str, str], home: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env["CHANGARRITO_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_until_ready(server: ServerProcess, timeout: float = READY_TIMEOUT) -> None:
    """Polls ``/ready`` until it answers 200; fails with the server's stderr if the process
    exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not server.is_running():
                pytest.fail(
                    f"{server.name} exited with code {server.process.returncode} before it was "
                    f"ready; its stderr:\n{server.stderr()}",
                    pytrace=False,
                )
            try:
                response = client.get(server.url + "/ready")
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            time.sleep(0.1)
    server.stop()
    pytest.fail(
        f"{server.name} was not ready after {timeout:.0f}s (last: {last}); its stderr:\n"
        f"{server.stderr()}",
        pytrace=False,
    )


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    """``start_server(role="all", env={...}, name=None, args=())`` → a ready ``ServerProcess``."""
    servers: list[ServerProcess] = []
    request.node.stash[_SERVERS] = servers

    def start(
        role: str = "all",
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        args: tuple[str, ...] = (),
        timeout: float = READY_TIMEOUT,
    ) -> ServerProcess:
        label = name or f"{role}-{len(servers) + 1}"
        folder = tmp_path / label
        folder.mkdir()
        port = free_port()
        stderr_path = folder / "stderr.log"
        stderr = stderr_path.open("wb")
        command = [
            *changarrito_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--role",
            role,
            *args,
        ]
        process = subprocess.Popen(
            command,
            env=child_env(env or {}, folder / "home"),
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            cwd=folder,
            start_new_session=True,
        )
        server = ServerProcess(label, f"http://127.0.0.1:{port}", process, stderr_path, stderr)
        servers.append(server)
        wait_until_ready(server, timeout)
        return server

    try:
        yield start
    finally:
        for server in reversed(servers):
            server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Before the report of a failed test is built, attach each server's stderr to it.
    if call.excinfo is not None and call.when in ("setup", "call"):
        for server in item.stash.get(_SERVERS, []):
            item.add_report_section(call.when, f"stderr of {server.name}", server.stderr())
    return (yield)
