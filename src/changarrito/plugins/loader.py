"""Loads provider plugins: built-ins first, then the ``changarrito`` entry-point group.

Built-in providers are plugins like any other: modules listed in ``DEFAULT_PLUGINS``, imported
and registered with the same ``PluginManager`` as a third party's. A module that fails to import
or to register is reported (logged, listed in ``failed``) and the rest still load.

``CHANGARRITO_LOAD_PLUGINS`` is an allow-list of *third-party* plugins (comma-separated entry
point names or distribution names; unset = all installed; empty = none). Built-ins always load:
they are part of the service's contract, and a self-hoster who does not want one simply does
not configure it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy
import structlog

from changarrito.plugins import hookspecs
from changarrito.settings import plugin_settings

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "changarrito"
ALLOW_LIST_ENV = "CHANGARRITO_LOAD_PLUGINS"
BUILTIN_DISTRIBUTION = "changarrito"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "changarrito.plugins.llm.openai",
    "changarrito.plugins.llm.openrouter",
    "changarrito.plugins.llm.anthropic",
    "changarrito.plugins.llm.azure_openai",
    "changarrito.plugins.llm.ollama",
    "changarrito.plugins.payments.stripe",
    "changarrito.plugins.payments.mercadopago",
    "changarrito.plugins.payments.clip",
    "changarrito.plugins.whatsapp.meta",
)


@dataclass(frozen=True, slots=True)
class FailedPlugin:
    """A plugin that could not be loaded, and why (exception type and message)."""

    name: str
    distribution: str | None
    error: str


@dataclass(slots=True)
class LoadedPlugins:
    """The plugin manager after loading, with where each plugin came from."""

    pm: pluggy.PluginManager
    #: plugin name -> distribution (``changarrito`` for built-ins, None when registered by hand)
    origins: dict[str, str | None] = field(default_factory=dict)
    failed: list[FailedPlugin] = field(default_factory=list)

    def fail(self, name: str, distribution: str | None, exc: BaseException) -> None:
        error = f"{type(exc).__name__}: {exc}"
        self.failed.append(FailedPlugin(name, distribution, error))
        log.error("plugin_failed", plugin=name, distribution=distribution, error=error)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


def allow_list(env: Mapping[str, str]) -> frozenset[str] | None:
    """The normalised names in ``CHANGARRITO_LOAD_PLUGINS`` (read by the settings' one
    parser), or ``None`` when unset (all)."""
    names = plugin_settings(env).allow_list
    return None if names is None else frozenset(_normalise(n) for n in names)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def load_modules(
    env: Mapping[str, str],
    *,
    builtins: Iterable[str] = DEFAULT_PLUGINS,
    extra: Iterable[tuple[str, object]] = (),
    discover: Callable[[], Iterable[EntryPoint]] | None = None,
) -> LoadedPlugins:
    """Registers the built-in modules, then ``extra`` (name, plugin) pairs (tests), then the
    allowed entry points; finally ``pm.check_pending()`` (a hook no spec knows is a failure)."""
    loaded = LoadedPlugins(new_plugin_manager())
    for module_name in builtins:
        _register(
            loaded, module_name, BUILTIN_DISTRIBUTION, partial(importlib.import_module, module_name)
        )
    for name, plugin in extra:
        _register(loaded, name, None, partial(_identity, plugin))
    allowed = allow_list(env)
    found = discover() if discover else entry_points(group=ENTRY_POINT_GROUP)
    for ep in found:
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is not None and not ({_normalise(ep.name), _normalise(dist or "")} & allowed):
            log.info("plugin_skipped", plugin=ep.name, distribution=dist, reason=ALLOW_LIST_ENV)
            continue
        _register(loaded, ep.name, dist, ep.load)
    _check_pending(loaded)
    return loaded


def _identity(plugin: object) -> object:
    return plugin


def _register(
    loaded: LoadedPlugins, name: str, dist: str | None, load: Callable[[], object]
) -> None:
    if loaded.pm.has_plugin(name):
        loaded.fail(name, dist, RuntimeError(f"a plugin named {name!r} is already loaded"))
        return
    try:
        plugin = load()
        loaded.pm.register(plugin, name=name)
    except Exception as exc:  # a broken plugin is reported, never fatal
        loaded.fail(name, dist, exc)
        return
    loaded.origins[name] = dist


def _check_pending(loaded: LoadedPlugins) -> None:
    """``pm.check_pending()``; a plugin implementing an unknown hook is unloaded and reported."""
    while True:
        try:
            loaded.pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = loaded.pm.get_name(exc.plugin) or repr(exc.plugin)
            loaded.pm.unregister(exc.plugin)
            loaded.fail(name, loaded.origins.pop(name, None), exc)


def collect_registrations(loaded: LoadedPlugins, hook_name: str) -> list[tuple[str, Any]]:
    """(plugin name, registered object) pairs from calling ``hook_name`` on each plugin.

    Each plugin is called separately, with a ``register`` that knows who is calling, so a
    duplicate can name both origins. A plugin whose hook raises is reported as failed and none
    of its registrations are kept.
    """
    caller = getattr(loaded.pm.hook, hook_name)
    found: list[tuple[str, Any]] = []
    for impl in reversed(caller.get_hookimpls()):  # pluggy lists them last-registered first
        mine: list[Any] = []
        try:
            impl.function(**{arg: mine.append for arg in impl.argnames})
        except Exception as exc:
            loaded.fail(impl.plugin_name, loaded.origins.get(impl.plugin_name), exc)
            continue
        found.extend((impl.plugin_name, obj) for obj in mine)
    return found
