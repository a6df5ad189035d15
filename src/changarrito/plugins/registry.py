"""The providers the loaded plugins registered, by kind and id, and the ``plugins`` table.

Kinds come from ``changarrito.plugins.kinds.PROVIDER_KINDS`` (hook, base class, printed word):
the registry has no branch per kind. A kind is named by its wire name (``payments``,
``IntegrationType.PAYMENTS``) or by the word ``changarrito plugins`` prints (``payment``).
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
from changarrito.domain.kinds import IntegrationType
from changarrito.plugins.base import LLMProvider, PaymentProvider, Provider, ProviderContext
from changarrito.plugins.kinds import PROVIDER_KINDS, ProviderKind, provider_kind
from changarrito.plugins.loader import (
    DEFAULT_PLUGINS,
    FailedPlugin,
    LoadedPlugins,
    collect_registrations,
    load_modules,
)
from changarrito.plugins.whatsapp.base import WhatsAppProvider

log = structlog.get_logger(__name__)

#: A kind, by wire name or printed word (see the module docstring).
KindName = IntegrationType | str
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What ``changarrito plugins`` shows of one provider."""

    id: str
    #: The kind as ``changarrito plugins`` prints it (``llm``, ``payment``, ``whatsapp``).
    kind: str
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
        self._providers: dict[IntegrationType, dict[str, Provider]] = {
            t: {} for t in PROVIDER_KINDS
        }
        self._info: dict[tuple[IntegrationType, str], ProviderInfo] = {}
        for kind in PROVIDER_KINDS.values():
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
        ids = {kind.word: registry.ids(t) for t, kind in PROVIDER_KINDS.items()}
        log.info("plugins_loaded", **ids, failed=[f.name for f in registry.failed])
        return registry

    def _add(
        self, kind: ProviderKind, plugin: str, dist: str | None, cls: Any, loaded: LoadedPlugins
    ) -> None:
        problem = _check_class(kind, cls)
        if problem:
            loaded.fail(plugin, dist, TypeError(problem))
            self.failed = loaded.failed
            return
        itype = kind.kind.type
        previous = self._info.get((itype, cls.id))
        if previous is not None:
            raise ConfigurationError(
                f"{kind.word} provider id {cls.id!r} is registered twice: by plugin "
                f"{previous.plugin!r} ({previous.distribution or 'not installed'}) and by plugin "
                f"{plugin!r} ({dist or 'not installed'}); uninstall one or leave it out of "
                "CHANGARRITO_LOAD_PLUGINS"
            )
        self._providers[itype][cls.id] = cls(self.context)
        self._info[(itype, cls.id)] = ProviderInfo(
            id=cls.id,
            kind=kind.word,
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

    def get(self, kind: KindName, provider_id: str) -> Provider:
        """The provider of ``kind`` with that id; ``ValidationFailed`` listing the installed
        ones when there is none."""
        pk = provider_kind(kind)
        try:
            return self._providers[pk.kind.type][provider_id]
        except KeyError:
            installed = ", ".join(self.ids(kind)) or "none"
            raise ValidationFailed(
                f"Unknown {pk.word} provider {provider_id!r}; installed: {installed}"
            ) from None

    def ids(self, kind: KindName) -> list[str]:
        return sorted(self._providers[provider_kind(kind).kind.type])

    def providers(self, kind: KindName) -> list[Provider]:
        found = self._providers[provider_kind(kind).kind.type]
        return [found[i] for i in sorted(found)]

    def info(self, kind: KindName | None = None) -> list[ProviderInfo]:
        word = None if kind is None else provider_kind(kind).word
        return sorted(
            (i for i in self._info.values() if word is None or i.kind == word),
            key=lambda i: (i.kind, i.id),
        )


def _check_class(kind: ProviderKind, cls: Any) -> str | None:
    base = kind.base
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return f"{kind.hook} got {cls!r}, not a subclass of {base.__name__}"
    abstract = getattr(cls, "__abstractmethods__", None)
    if abstract:
        missing = ", ".join(sorted(abstract))
        return f"{cls.__name__} does not implement {missing}"
    provider_id = getattr(cls, "id", None)
    if not isinstance(provider_id, str) or not _ID.match(provider_id):
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
            i.kind,
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
