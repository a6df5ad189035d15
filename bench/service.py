"""Running the real ``changarrito serve`` for the load benches: its database, its tenants, its
process, and its peers' processes beside it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, free_port, say, stop, wait_for_port
from bench.payloads import Number

#: The project's own virtualenv (``make run`` / ``make test`` create it): the service is run
#: from there, exactly as a user runs it.
PROJECT_VENV = ROOT / ".venv"
PLATFORM_NUMBER = Number("100000000000001", "15550000001", "200000000000001")
APP_SECRET = "bench-app-secret-5f2c9a7e1d3b4c6a"
VERIFY_TOKEN = "bench-verify-token"


def tenant_number(i: int) -> Number:
    return Number(f"{110_000_000_000_000 + i}", f"5255{i:08d}", f"{210_000_000_000_000 + i}")


@dataclass
class Service:
    """A started ``changarrito serve`` (or peer) process."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop(self.proc)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(name: str, argv: list[str], env: Mapping[str, str], port: int, logdir: Path) -> Service:
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    service = Service(name, port, proc, log)
    try:
        wait_for_port(port, proc, timeout=90)
    except BaseException:
        service.stop()
        raise RuntimeError(f"{name} did not start:\n{service.tail()}") from None
    return service


def service_env(
    database_url: str, keys: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of ``changarrito serve`` in the benches (see ``docs/performance.md``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WHATSAPP_", "OPENAI_", "CHANGARRITO_", "LLM_", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "CHANGARRITO_ENCRYPTION_KEYS": keys,
            "CHANGARRITO_HOME": tempfile.mkdtemp(prefix="changarrito-bench-home-"),
            "CHANGARRITO_LOG_LEVEL": "WARNING",
            "WHATSAPP_APP_SECRET": APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": PLATFORM_NUMBER.phone_number_id,
            "WHATSAPP_BUSINESS_ACCOUNT_ID": PLATFORM_NUMBER.waba_id,
            "WHATSAPP_ACCESS_TOKEN": "EAAGbenchplatformtoken0000000000",
        }
    )
    env.update(extra or {})
    return env


def start_changarrito(
    env: Mapping[str, str], logdir: Path, name: str = "changarrito", venv: Path = PROJECT_VENV
) -> Service:
    """``changarrito serve`` from ``venv``: the project's, or another checkout's (a baseline
    commit measured in the same run)."""
    port = free_port()
    binary = venv / "bin" / "changarrito"
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run `make test` or `make run` first (README)")
    argv = [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return start(name, argv, env, port, logdir)


async def seed_tenants(
    database_url: str, keys: str, count: int, extra_llm: dict[str, Any] | None = None
) -> list[Number]:
    """``count`` tenants, each with a WhatsApp number and credential (encrypted by the
    service's own store), through the store's public methods. With ``extra_llm``
    (``{"apiKey", "baseUrl"}``), each also gets an OpenAI credential."""
    from changarrito.adapters.crypto.keyring import KeyRing
    from changarrito.bootstrap import Database, bootstrap
    from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber
    from changarrito.settings import Settings

    keyring = KeyRing.parse(keys)
    settings = Settings.from_env(
        {"DATABASE_URL": database_url, "CHANGARRITO_ENCRYPTION_KEYS": keys}
    )
    service = await bootstrap(settings, Database(database_url, keyring), listen=False)
    numbers = []
    try:
        for i in range(count):
            number = tenant_number(i)
            tenant = await service.storage.store.create_tenant(f"Tienda {i}")
            credential = Credential(
                tenant_id=tenant.id,
                integration_type=IntegrationType.WHATSAPP,
                provider="meta",
                secrets=Secrets({"accessToken": f"EAAGbenchtenant{i:06d}token000000"}),
                config={
                    "phoneNumberId": number.phone_number_id,
                    "businessAccountId": number.waba_id,
                },
            )
            claim = WhatsAppNumber(tenant.id, number.phone_number_id, number.display_phone_number)
            await service.storage.store.save_credential(credential, claim)
            if extra_llm is not None:
                llm = Credential(
                    tenant_id=tenant.id,
                    integration_type=IntegrationType.LLM,
                    provider="openai",
                    secrets=Secrets(extra_llm),
                    config={
                        "model": "gpt-4o-mini",
                        "systemPrompt": "Eres la tienda de la esquina.",
                    },
                )
                await service.storage.store.save_credential(llm)
            numbers.append(number)
    finally:
        await service.aclose()
    say(f"seeded {count} tenants with WhatsApp numbers (credentials encrypted by the store)")
    return numbers


def seed(
    database_url: str, keys: str, count: int, extra_llm: dict[str, Any] | None = None
) -> list[Number]:
    return asyncio.run(seed_tenants(database_url, keys, count, extra_llm))


def seed_with(
    venv: Path,
    database_url: str,
    keys: str,
    count: int,
    extra_llm: dict[str, Any] | None = None,
) -> list[Number]:
    """``seed`` run by another checkout's ``venv`` (its Python, its ``changarrito``: its
    migrations and its store), so that the database is the one its ``serve`` expects. The
    tenants' numbers are ``tenant_number(i)``, the same whichever code seeds them."""
    import json
    import sys

    code = "import json, sys; from bench.service import seed; seed(*json.loads(sys.argv[1]))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(ROOT)  # the bench package; changarrito comes from venv
    argv = [str(venv / "bin" / "python"), "-c", code]
    argv.append(json.dumps([database_url, keys, count, extra_llm]))
    subprocess.run(argv, env=env, cwd=tempfile.gettempdir(), check=True, stdout=sys.stderr)
    return [tenant_number(i) for i in range(count)]
