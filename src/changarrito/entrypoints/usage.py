"""``changarrito usage [--tenant ID|platform] [--month YYYY-MM] [--json]``: a month of the
usage ledger for the operator, by source and kind; every tenant (one block each) without
``--tenant``. Tokens as the providers reported them; seconds of audio; messages Meta bills."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from changarrito.domain.errors import ConfigurationError
from changarrito.domain.usage import Report
from changarrito.entrypoints.messages import parse_tenant

if TYPE_CHECKING:
    from changarrito.bootstrap import Service


def _as_json(report: Report) -> dict[str, object]:
    return {
        "from": report.period.first.isoformat(),
        "to": report.period.last.isoformat(),
        "rows": [
            {
                "tenantId": str(r.tenant_id) if r.tenant_id else None,
                "source": r.group,
                "kind": r.kind,
                "acts": r.acts,
                "inputTokens": r.input_tokens,
                "outputTokens": r.output_tokens,
                "seconds": r.seconds,
                "billable": r.billable,
            }
            for r in report.rows
        ],
    }


async def print_usage(service: Service, args: argparse.Namespace) -> int:
    if service.usage is None:
        raise ConfigurationError("the usage ledger needs PostgreSQL")
    every = args.tenant is None
    tenant = None if every else parse_tenant(args.tenant)
    if tenant is not None:
        await service.storage.store.get_tenant(tenant)  # an unknown tenant is an error
    report = await service.usage.month(tenant, args.month, every_tenant=every)
    if args.json:
        print(json.dumps(_as_json(report)))
        return 0
    print(f"usage {report.period.first} .. {report.period.last}")
    header = f"{'tenant':<36}  {'source':<8}  {'kind':<17} {'acts':>8} {'tokens in':>11} "
    print(header + f"{'tokens out':>11} {'seconds':>9} {'billable':>8}")
    for r in report.rows:
        who = str(r.tenant_id) if r.tenant_id else ("platform" if every else args.tenant)
        print(
            f"{who:<36}  {r.group:<8}  {r.kind:<17} {r.acts:>8} {r.input_tokens:>11,} "
            f"{r.output_tokens:>11,} {r.seconds:>9.1f} {r.billable:>8}"
        )
    if not report.rows:
        print("(nothing used in this period)")
    return 0
