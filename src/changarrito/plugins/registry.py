"""The providers the loaded plugins registered, by kind and id, and the ``plugins`` table.

Kinds come from their rows: ``changarrito.domain.kinds.KINDS`` (the hook that registers a
kind's providers) and ``changarrito.plugins.hookspecs.PROVIDER_BASES`` (the class they
subclass); the registry has no branch per kind. A kind is named by its ``IntegrationType``
(``payments``), here, in the ``plugins`` table and in the start-up log alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any

import msgspec
import structlog

from changarrito.domain.errors import ConfigurationError, ValidationFailed
from changarrito.domain.kinds import KINDS, IntegrationType, Kind
from changarrito.plugins.base import LLMProvider, PaymentProvider, Provider, ProviderContext
from changarrito.plugins.hookspecs import PROVIDER_BASES
from changarrito.plugins.loader import (
    DEFAULT_PLUGINS,
    FailedPlugin,
    LoadedPlugins,
    collect_registrations,
    load_modules,
)
from changarrito.plugins.whatsapp.base import WhatsAppProvider

log = structlog.get_logger(__name__)

#: What a provider id must look like (the loader refuses any other).
PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What ``changarrito plugins`` shows of one provider."""

    id: str
    #: Its kind (``changarrito plugins`` prints its name: ``llm``, ``payments``, ``whatsapp``).
    kind: IntegrationType
    name: str
    plugin: str
    distribution: str | None
    #: Field names as the API spells them; optional ones end in ``?``.
    credential_fields: tuple[str, ...]
    config_fields: tuple[str, ...]


def schema_fields(schema: type[msgspec.Struct]) -> tuple[str, ...]:
    info = msgspec.inspect.type_info(schema)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(f.encode_name + ("" if f.required else "?") for f in info.fields)


class ProviderRegistry:
    """Instantiated providers by kind and id; built once at start-up by ``load``."""

    def __init__(self, context: ProviderContext, loaded: LoadedPlugins) -> None:
        self.context = context
        self.failed: list[FailedPlugin] = loaded.failed
        self._providers: dict[IntegrationType, dict[str, Provider]] = {t: {} for t in KINDS}
        self._info: dict[tuple[IntegrationType, str], ProviderInfo] = {}
        for kind in KINDS.values():
            for plugin, cls in collect_registrations(loaded, kind.hook):
                self._add(kind, plugin, loaded.origins.get(plugin), cls, loaded)

    @classmethod
    def load(
        cls,
        context: ProviderContext,
        *,
        env: Mapping[str, str] | None = None,
        builtins: Iterable[str] = DEFAULT_PLUGINS,
        extra: Iterable[tuple[str, object]] = (),
        discover: Any = None,
    ) -> ProviderRegistry:
        """Loads every plugin and instantiates its providers. ``env`` (for the allow-list)
        defaults to the context's environment; ``ConfigurationError`` on a duplicate id."""
        env = env if env is not None else context.env
        loaded = load_modules(env, builtins=builtins, extra=extra, discover=discover)
        registry = cls(context, loaded)
        ids = {t.value: registry.ids(t) for t in KINDS}
        log.info("plugins_loaded", **ids, failed=[f.name for f in registry.failed])
        return registry

    def _add(
        self, kind: Kind, plugin: str, dist: str | None, cls: Any, loaded: LoadedPlugins
    ) -> None:
        problem = _check_class(kind, cls)
        if problem:
            loaded.fail(plugin, dist, TypeError(problem))
            self.failed = loaded.failed
            return
        itype = kind.type
        previous = self._info.get((itype, cls.id))
        if previous is not None:
            raise ConfigurationError(
                f"{kind.label} provider id {cls.id!r} is registered twice: by plugin "
                f"{previous.plugin!r} ({previous.distribution or 'not installed'}) and by plugin "
                f"{plugin!r} ({dist or 'not installed'}); uninstall one or leave it out of "
                "CHANGARRITO_LOAD_PLUGINS"
            )
        self._providers[itype][cls.id] = cls(self.context)
        self._info[(itype, cls.id)] = ProviderInfo(
            id=cls.id,
            kind=itype,
            name=getattr(cls, "name", cls.id),
            plugin=plugin,
            distribution=dist,
            credential_fields=schema_fields(cls.credentials_schema),
            config_fields=schema_fields(cls.config_schema),
        )

    # Lookups -----------------------------------------------------------------------------------

    def llm(self, provider_id: str) -> LLMProvider:
        provider = self.get(IntegrationType.LLM, provider_id)
        assert isinstance(provider, LLMProvider)
        return provider

    def payment(self, provider_id: str) -> PaymentProvider:
        provider = self.get(IntegrationType.PAYMENTS, provider_id)
        assert isinstance(provider, PaymentProvider)
        return provider

    def whatsapp(self, provider_id: str) -> WhatsAppProvider:
        provider = self.get(IntegrationType.WHATSAPP, provider_id)
        assert isinstance(provider, WhatsAppProvider)
        return provider

    def get(self, kind: IntegrationType, provider_id: str) -> Provider:
        """The provider of ``kind`` with that id; ``ValidationFailed`` listing the installed
        ones when there is none."""
        try:
            return self._providers[kind][provider_id]
        except KeyError:
            installed = ", ".join(self.ids(kind)) or "none"
            raise ValidationFailed(
                f"Unknown {KINDS[kind].label} provider {provider_id!r}; installed: {installed}"
            ) from None

    def ids(self, kind: IntegrationType) -> list[str]:
        return sorted(self._providers[kind])

    def providers(self, kind: IntegrationType) -> list[Provider]:
        found = self._providers[kind]
        return [found[i] for i in sorted(found)]

    def info(self, kind: IntegrationType | None = None) -> list[ProviderInfo]:
        return sorted(
            (i for i in self._info.values() if kind is None or i.kind == kind),
            key=lambda i: (i.kind.value, i.id),
        )


def _check_class(kind: Kind, cls: Any) -> str | None:
    base = PROVIDER_BASES[kind.type]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return f"{kind.hook} got {cls!r}, not a subclass of {base.__name__}"
    abstract = getattr(cls, "__abstractmethods__", None)
    if abstract:
        missing = ", ".join(sorted(abstract))
        return f"{cls.__name__} does not implement {missing}"
    provider_id = getattr(cls, "id", None)
    if not isinstance(provider_id, str) or not PROVIDER_ID.match(provider_id):
        return f"{cls.__name__}.id must be lowercase letters, digits and dashes"
    for attr in ("credentials_schema", "config_schema"):
        schema = getattr(cls, attr, None)
        if not (isinstance(schema, type) and issubclass(schema, msgspec.Struct)):
            return f"{cls.__name__}.{attr} must be a msgspec.Struct subclass"
    return None


def format_plugins_table(registry: ProviderRegistry) -> str:
    """The ``changarrito plugins`` listing: one row per provider, then the failed plugins."""
    header = ("ID", "KIND", "DISTRIBUTION", "CREDENTIALS", "CONFIG")
    rows = [
        (
            i.id,
            i.kind.value,
            i.distribution or f"({i.plugin})",
            ", ".join(i.credential_fields) or "-",
            ", ".join(i.config_fields) or "-",
        )
        for i in registry.info()
    ]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in [header, *rows]
    ]
    if not rows:
        lines.append("(no providers)")
    if registry.failed:
        lines += ["", "Failed plugins:"]
        lines += [
            f"  {f.name} ({f.distribution or 'not installed'}): {f.error}" for f in registry.failed
        ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def discover_none() -> list[EntryPoint]:
    """A ``discover`` that finds no entry points (tests of built-ins only)."""
    return []
