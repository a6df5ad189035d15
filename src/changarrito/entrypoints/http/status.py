"""``GET /api/v1/integrations/status``: its wire shape, built from the kinds' rows.

One field per kind, in ``KINDS`` order (``status_struct()``), each section shaped by the kind's
row (``changarrito.domain.kinds``): ``SINGLE`` kinds ``{"configured", "<platform_flag>",
"provider"?, "model"?, "isVerified", ...}``, ``PER_PROVIDER`` kinds ``{"<provider>":
{"configured", ...}}``. The contract's keys come first, in its order; extras only once the
tenant configured the kind. Named as before the rows drove it (``WhatsAppStatus``,
``LLMStatus``, ``PaymentStatus``, ``IntegrationsStatus``) for the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from types import GenericAlias
from typing import TYPE_CHECKING, Any, cast

import msgspec

from changarrito.domain.budgets import Standing
from changarrito.domain.integration_views import ClaimState, KindStatus, claim_state
from changarrito.domain.integrations import Status
from changarrito.domain.kinds import KINDS, Kind, StatusShape
from changarrito.domain.model import Credential, WhatsAppNumber
from changarrito.entrypoints.http.schemas import Wire

# A field whose default is None is left out of the JSON while None (``omit_defaults``).
_NUMBER_FIELDS = [
    ("phone_number_id", str | None, None),
    ("phone_number", str | None, None),
    ("display_name", str | None, None),
    # "confirmed" once Graph confirmed the claim on the number and its account, else "pending"
    ("number_claim", ClaimState | None, None),
]
_VERIFICATION_FIELDS = [
    ("verified_at", datetime | None, None),
    ("verification_error", str | None, None),
]


@cache
def _section_struct(kind: Kind) -> type[msgspec.Struct]:
    """One provider's section of ``kind`` (``WhatsAppStatus``, ``LLMStatus``,
    ``PaymentStatus``): ``configured``, the platform flag, the serving provider and model
    (``status_provider``), ``isVerified``, the claimed number (``claims_number``)."""
    fields: list[tuple[Any, ...]] = [("configured", bool)]
    if kind.shape is StatusShape.SINGLE and kind.platform_flag:
        fields.append(("uses_platform", bool, msgspec.field(name=kind.platform_flag)))
    if kind.status_provider:
        fields += [("provider", str), ("model", str | None)]
    fields.append(
        ("is_verified", bool) if kind.status_verified else ("is_verified", bool | None, None)
    )
    if kind.claims_number:
        fields += _NUMBER_FIELDS
    fields += _VERIFICATION_FIELDS
    return msgspec.defstruct(
        f"{kind.title}Status",
        fields,
        bases=(Wire,),
        module=__name__,
        frozen=True,
        omit_defaults=True,
    )


class PlatformBudget(Wire, frozen=True):
    """A limit the operator set on the tenant's use of the platform's credentials, and where
    it stands this period: ``stopped`` when the hard limit is reached (until the period ends,
    the platform's credential is not used for it: answers follow the operator's choice)."""

    metric: str
    period: str
    figure: int
    soft: int | None
    hard: int | None
    stopped: bool


@cache
def _status_struct(kinds: tuple[Kind, ...]) -> type[msgspec.Struct]:
    fields: list[tuple[Any, ...]] = [
        (k.name, GenericAlias(dict, (str, s)) if k.shape is StatusShape.PER_PROVIDER else s)
        for k, s in ((k, _section_struct(k)) for k in kinds)
    ]
    fields.append(("budgets", list[PlatformBudget], msgspec.field(default_factory=list)))
    # ``budgets`` only when some apply: a tenant without them sees the contract's shape.
    return msgspec.defstruct(
        "IntegrationsStatus",
        fields,
        bases=(Wire,),
        module=__name__,
        frozen=True,
        omit_defaults=True,
    )


def status_struct() -> type[msgspec.Struct]:
    """``IntegrationsStatus`` of today's rows: one field per kind, in ``KINDS`` order."""
    return _status_struct(tuple(KINDS.values()))


# The type checker sees a class; everything else the struct built from the rows (the status
# handler's return annotation resolves to it, so the OpenAPI schema shows every kind).
if TYPE_CHECKING:

    class IntegrationsStatus(Wire, frozen=True):
        """The tenant's integrations at a glance: one field per kind (built from the rows)."""

else:
    IntegrationsStatus = status_struct()


def status_of(status: Status, budgets: Sequence[Standing] = ()) -> IntegrationsStatus:
    """The wire form of ``status``: each kind's section as its row shapes it, and the
    platform-usage ``budgets`` that have a limit."""
    sections: dict[str, Any] = {}
    for itype, section in status.kinds.items():
        kind, shape = section.kind, _section_struct(section.kind)
        if kind.shape is StatusShape.PER_PROVIDER:
            sections[itype.value] = {
                p: shape(**_verification(kind, c)) for p, c in section.providers.items()
            }
        else:
            sections[itype.value] = shape(**_single(section, status.whatsapp_numbers))
    sections["budgets"] = [
        PlatformBudget(b.metric, b.period, b.figure, b.limit.soft, b.limit.hard, b.stopped)
        for b in budgets
        if b.limit.soft is not None or b.limit.hard is not None
    ]
    wire = _status_struct(tuple(s.kind for s in status.kinds.values()))(**sections)
    return cast("IntegrationsStatus", wire)


def _verification(kind: Kind, own: Credential | None) -> dict[str, Any]:
    """What every section shows: whether the tenant configured it, and the provider's verdict
    (``isVerified`` false, not absent, before that for kinds with ``status_verified``)."""
    unconfigured = False if kind.status_verified else None
    return {
        "configured": own is not None,
        "is_verified": own.is_verified if own else unconfigured,
        "verified_at": own.verified_at if own else None,
        "verification_error": own.verification_error if own else None,
    }


def _single(section: KindStatus, numbers: list[WhatsAppNumber]) -> dict[str, Any]:
    kind, own = section.kind, section.own
    values = _verification(kind, own)
    if kind.platform_flag:
        values["uses_platform"] = own is None
    if kind.status_provider:
        values.update(provider=section.provider or "", model=section.model)
    if kind.claims_number and own is not None:
        number = numbers[0] if numbers else None
        values.update(
            phone_number_id=str(own.config.get("phoneNumberId")),
            phone_number=number.phone_number if number else own.config.get("phoneNumber"),
            display_name=number.display_name if number else own.config.get("displayName"),
            number_claim=claim_state(own.config, numbers),
        )
    return values
