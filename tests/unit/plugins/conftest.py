"""Fixtures shared by the provider tests: a provider on a fake upstream, closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from changarrito.plugin import Provider, ProviderContext
from changarrito.testing import FakeUpstream
from changarrito.testing.upstream import Answer


@pytest.fixture
async def on_fake_upstream() -> AsyncIterator[Callable[..., tuple[Any, FakeUpstream]]]:
    """``on_fake_upstream(cls, *answers, env=...)`` → (provider, fake upstream answering in
    order); every client is closed after the test."""
    contexts: list[ProviderContext] = []

    def factory(
        cls: type[Provider], *answers: Answer, env: dict[str, str] | None = None
    ) -> tuple[Any, FakeUpstream]:
        upstream = FakeUpstream(*answers)
        context = upstream.context(env)
        contexts.append(context)
        return cls(context), upstream

    yield factory
    for context in contexts:
        await context.http.aclose()
