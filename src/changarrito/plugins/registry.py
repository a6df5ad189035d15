"""The providers the loaded plugins registered, by kind and id, and the ``plugins`` table."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any, Literal

import msgspec
import structlog

from changarrito.domain.errors import ConfigurationError, ValidationFailed
from changarrito.plugins.base import LLMProvider, PaymentProvider, Provider, ProviderContext
from changarrito.plugins.loader import (
    DEFAULT_PLUGINS,
    FailedPlugin,
    LoadedPlugins,
    collect_registrations,
    load_modules,
)

log = structlog.get_logger(__name__)

Kind = Literal["llm", "payment"]
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_BASES: dict[Kind, type[Any]] = {"llm": LLMProvider, "payment": PaymentProvider}
_HOOKS: dict[Kind, str] = {"llm": "register_llm_providers", "payment": "register_payment_providers"}


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What ``changarrito plugins`` shows of one provider."""

    id: str
    kind: Kind
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
        self._providers: dict[Kind, dict[str, Provider]] = {"llm": {}, "payment": {}}
        self._info: dict[tuple[Kind, str], ProviderInfo] = {}
        for kind in ("llm", "payment"):
            for plugin, cls in collect_registrations(loaded, _HOOKS[kind]):
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
        """Loads every plugin and instantiates its providers. ``env`` defaults to the context's
        environment, then ``os.environ``; ``ConfigurationError`` on a duplicate id."""
        env = env if env is not None else (context.env or os.environ)
        loaded = load_modules(env, builtins=builtins, extra=extra, discover=discover)
        registry = cls(context, loaded)
        log.info(
            "plugins_loaded",
            llm=registry.ids("llm"),
            payment=registry.ids("payment"),
            failed=[f.name for f in registry.failed],
        )
        return registry

    def _add(
        self, kind: Kind, plugin: str, dist: str | None, cls: Any, loaded: LoadedPlugins
    ) -> None:
        problem = _check_class(kind, cls)
        if problem:
            loaded.fail(plugin, dist, TypeError(problem))
            self.failed = loaded.failed
            return
        previous = self._info.get((kind, cls.id))
        if previous is not None:
            raise ConfigurationError(
                f"{kind} provider id {cls.id!r} is registered twice: by plugin "
                f"{previous.plugin!r} ({previous.distribution or 'not installed'}) and by plugin "
                f"{plugin!r} ({dist or 'not installed'}); uninstall one or leave it out of "
                "CHANGARRITO_LOAD_PLUGINS"
            )
        self._providers[kind][cls.id] = cls(self.context)
        self._info[(kind, cls.id)] = ProviderInfo(
            id=cls.id,
            kind=kind,
            name=getattr(cls, "name", cls.id),
            plugin=plugin,
            distribution=dist,
            credential_fields=schema_fields(cls.credentials_schema),
            config_fields=schema_fields(cls.config_schema),
        )

    # Lookups -----------------------------------------------------------------------------------

    def llm(self, provider_id: str) -> LLMProvider:
        provider = self._get("llm", provider_id)
        assert isinstance(provider, LLMProvider)
        return provider

    def payment(self, provider_id: str) -> PaymentProvider:
        provider = self._get("payment", provider_id)
        assert isinstance(provider, PaymentProvider)
        return provider

    def _get(self, kind: Kind, provider_id: str) -> Provider:
        try:
            return self._providers[kind][provider_id]
        except KeyError:
            installed = ", ".join(self.ids(kind)) or "none"
            raise ValidationFailed(
                f"Unknown {kind} provider {provider_id!r}; installed: {installed}"
            ) from None

    def ids(self, kind: Kind) -> list[str]:
        return sorted(self._providers[kind])

    def providers(self, kind: Kind) -> list[Provider]:
        return [self._providers[kind][i] for i in self.ids(kind)]

    def info(self, kind: Kind | None = None) -> list[ProviderInfo]:
        return sorted(
            (i for i in self._info.values() if kind is None or i.kind == kind),
            key=lambda i: (i.kind, i.id),
        )


def _check_class(kind: Kind, cls: Any) -> str | None:
    base = _BASES[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        return f"register_{kind}_providers got {cls!r}, not a subclass of {base.__name__}"
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
