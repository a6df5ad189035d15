"""Names the payment provider tests share (the fixture itself is in ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from changarrito.testing import FakeUpstream

#: The tenant the payment notifications of these tests are for.
TENANT = UUID("0b6f3c2a-1d4e-4f5a-8b9c-7d6e5f4a3b2c")

#: ``make(*answers, env=...)`` → (provider, fake upstream answering in order).
MakeProvider = Callable[..., tuple[Any, FakeUpstream]]
