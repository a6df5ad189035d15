"""Third-party plugins installed with pip are found through their entry points, with no
configuration: listed, usable as an LLM or payment provider, and hidden by the allow-list."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [ROOT / "examples" / "changarrito-mistral", ROOT / "examples" / "changarrito-conekta"]

PROBE = """
import asyncio, json, os
from decimal import Decimal
from changarrito.plugins.manager import load_plugins, format_plugins_table
from changarrito.plugin import ChatMessage
from changarrito.testing import FakeUpstream, json_response

upstream = FakeUpstream(json_response(200, {
    "model": "mistral-small-2409",
    "choices": [{"message": {"role": "assistant", "content": "Bonjour"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1}}))
registry = load_plugins(dict(os.environ), http=upstream.clients())
out = {"llm": registry.ids("llm"), "payments": registry.ids("payments"),
       "table": format_plugins_table(registry), "failed": [f.name for f in registry.failed]}
if "mistral" in out["llm"]:
    p = registry.llm("mistral")
    reply = asyncio.run(p.chat([ChatMessage(role="user", content="salut")],
                               p.parse_config({}), p.parse_credentials({"apiKey": "m-key"})))
    out["reply"] = [reply.text, reply.model, reply.provider]
    out["url"] = str(upstream.last.url)
    out["auth"] = upstream.last.headers["authorization"]
if "conekta" in out["payments"]:
    upstream.script(json_response(200, {"id": "chk_1", "url": "https://pay.conekta.com/link/1"}))
    p = registry.payment("conekta")
    link = asyncio.run(p.create_payment_link(
        link_id="0b6c1f0e-6a1d-4c39-8d0e-5f7b2a9c4e11",
        amount=Decimal("10.50"), currency="MXN", description="Tacos", reference="order-1",
        credentials=p.parse_credentials({"apiKey": "key_abc"}), config=p.parse_config({})))
    out["link"] = [link.provider, link.provider_id, link.url, str(link.status)]
    out["link_url"] = str(upstream.last.url)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
    command += [str(target), *(str(example) for example in EXAMPLES)]
    if importlib.util.find_spec("wheel") and importlib.util.find_spec("setuptools"):
        command.insert(4, "--no-build-isolation")  # fast path: no build environment
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    return target


def probe(site: Path, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if k != "CHANGARRITO_LOAD_PLUGINS"}
    environ.update(
        env,
        PYTHONPATH=str(site),
        MISTRAL_BASE_URL="https://mistral.test/v1",
        CONEKTA_BASE_URL="https://conekta.test",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_installed_plugin_is_discovered_listed_and_answers_chats(site: Path) -> None:
    out = probe(site)
    assert "mistral" in out["llm"] and "openai" in out["llm"]
    row = next(line for line in out["table"].splitlines() if line.startswith("mistral"))
    assert "changarrito-mistral" in row and "apiKey" in row
    assert out["reply"] == ["Bonjour", "mistral-small-2409", "mistral"]
    assert out["url"] == "https://mistral.test/v1/chat/completions"
    assert out["auth"] == "Bearer m-key"


def test_allow_list_naming_the_plugin_keeps_it(site: Path) -> None:
    assert "mistral" in probe(site, CHANGARRITO_LOAD_PLUGINS="changarrito-mistral")["llm"]


def test_leaving_the_plugin_out_of_the_allow_list_hides_it(site: Path) -> None:
    out = probe(site, CHANGARRITO_LOAD_PLUGINS="something-else")
    assert "mistral" not in out["llm"] and "openai" in out["llm"]
    assert "mistral" not in out["table"]


def test_an_installed_payment_plugin_is_discovered_listed_and_creates_links(site: Path) -> None:
    out = probe(site)
    assert "conekta" in out["payments"] and "stripe" in out["payments"]
    row = next(line for line in out["table"].splitlines() if line.startswith("conekta"))
    assert "changarrito-conekta" in row and "apiKey" in row
    assert out["link"] == ["conekta", "chk_1", "https://pay.conekta.com/link/1", "pending"]
    assert out["link_url"] == "https://conekta.test/checkouts"


def test_leaving_the_payment_plugin_out_of_the_allow_list_hides_it(site: Path) -> None:
    out = probe(site, CHANGARRITO_LOAD_PLUGINS="changarrito-mistral")
    assert "conekta" not in out["payments"] and "mistral" in out["llm"]
