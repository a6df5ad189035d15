"""``changarrito budgets show`` and ``changarrito budgets set``: the limits on each tenant's
use of the platform's credentials, for the operator (the same as the internal API's
``/api/v1/internal/tenants/{id}/budgets`` and ``/api/v1/internal/budgets/default``).

``set`` changes one metric and keeps the others; ``--soft`` and ``--hard`` left out keep
nothing for that metric but what is given (``--clear`` removes its limit)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING
from uuid import UUID

from changarrito.domain.budgets import Budgets, Standing
from changarrito.domain.errors import ConfigurationError, ValidationFailed

if TYPE_CHECKING:
    from changarrito.bootstrap import Service


def _scope(text: str) -> UUID | None:
    if text.strip().lower() == "default":
        return None
    try:
        return UUID(text)
    except ValueError:
        raise ValidationFailed(
            f"--tenant must be a tenant id (a UUID) or 'default', got {text!r}"
        ) from None


def _budgets(service: Service) -> Budgets:
    if service.budgets is None:
        raise ConfigurationError("budgets need PostgreSQL")
    return service.budgets


def _print(standing: list[Standing], *, default: bool, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    s.metric: {
                        "soft": s.limit.soft,
                        "hard": s.limit.hard,
                        "inherited": s.inherited,
                        "period": s.period,
                        "figure": s.figure,
                        "stopped": s.stopped,
                    }
                    for s in standing
                }
            )
        )
        return
    print(
        f"{'metric':<26} {'soft':>14} {'hard':>14}"
        + ("" if default else f" {'period':>10} {'figure':>14}")
    )
    for s in standing:
        soft = f"{s.limit.soft:,}" if s.limit.soft is not None else "-"
        hard = f"{s.limit.hard:,}" if s.limit.hard is not None else "-"
        line = f"{s.metric:<26} {soft:>14} {hard:>14}"
        if not default:
            note = " (default)" if s.inherited else ""
            note += "  STOPPED" if s.stopped else ""
            line += f" {s.period:>10} {s.figure:>14,}{note}"
        print(line)


async def show_budgets(service: Service, args: argparse.Namespace) -> int:
    tenant = _scope(args.tenant)
    if tenant is not None:
        await service.storage.store.get_tenant(tenant)
    standing = await _budgets(service).standing(tenant, default_only=tenant is None)
    _print(standing, default=tenant is None, as_json=args.json)
    return 0


async def set_budget(service: Service, args: argparse.Namespace) -> int:
    tenant = _scope(args.tenant)
    if tenant is not None:
        await service.storage.store.get_tenant(tenant)
    budgets = _budgets(service)
    own: dict[str, dict[str, int | None] | None] = {
        s.metric: {"soft": s.limit.soft, "hard": s.limit.hard}
        for s in await budgets.standing(tenant, default_only=tenant is None)
        if not s.inherited and (s.limit.soft is not None or s.limit.hard is not None)
    }
    own[args.metric] = None if args.clear else {"soft": args.soft, "hard": args.hard}
    standing = await budgets.set(tenant, own)
    _print(standing, default=tenant is None, as_json=args.json)
    return 0
