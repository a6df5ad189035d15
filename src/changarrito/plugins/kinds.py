"""The kinds' plugin side: the base class a provider of each kind subclasses.

The domain's rows (``changarrito.domain.kinds.KINDS``: wire name, hook, status shape...) cannot
name a plugin class, so this table completes them; the registry reads both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from changarrito.domain.kinds import KINDS, IntegrationType, Kind
from changarrito.plugins.base import LLMProvider, PaymentProvider
from changarrito.plugins.whatsapp.base import WhatsAppProvider


@dataclass(frozen=True, slots=True)
class ProviderKind:
    kind: Kind
    #: What a provider of the kind subclasses (a ``Provider`` subclass; abstract, hence
    #: ``type[object]`` for the type checker).
    base: type[object]
    #: The kind as ``changarrito plugins`` prints it (``KIND`` column) and start-up logs it.
    word: str

    @property
    def hook(self) -> str:
        return self.kind.hook


PROVIDER_KINDS: Mapping[IntegrationType, ProviderKind] = {
    pk.kind.type: pk
    for pk in (
        ProviderKind(KINDS[IntegrationType.WHATSAPP], WhatsAppProvider, "whatsapp"),
        ProviderKind(KINDS[IntegrationType.LLM], LLMProvider, "llm"),
        ProviderKind(KINDS[IntegrationType.PAYMENTS], PaymentProvider, "payment"),
    )
}


def provider_kind(kind: IntegrationType | str) -> ProviderKind:
    """The row of ``kind``, by wire name (``payments``) or by its printed word (``payment``)."""
    for pk in PROVIDER_KINDS.values():
        if kind in (pk.kind.type, pk.word):
            return pk
    raise KeyError(f"no such kind of provider: {kind!r}")
