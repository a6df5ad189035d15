"""The host's entry into the plugin system: load every plugin, get a ``ProviderRegistry``.

``load_plugins(settings.plugins)`` is what ``changarrito plugins`` and the composition root
call; the pieces live in ``loader`` (pluggy, entry points, allow-list), ``registry`` (ids,
table) and ``hookspecs`` (the hooks, and the base class of each kind of provider).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from changarrito.plugins.base import ProviderContext
from changarrito.plugins.loader import ALLOW_LIST_ENV, DEFAULT_PLUGINS, ENTRY_POINT_GROUP
from changarrito.plugins.registry import (
    ProviderInfo,
    ProviderRegistry,
    format_plugins_table,
)
from changarrito.settings import PluginSettings

__all__ = [
    "ALLOW_LIST_ENV",
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "ProviderInfo",
    "ProviderRegistry",
    "format_plugins_table",
    "load_plugins",
]


def load_plugins(
    env: PluginSettings | Mapping[str, str] | None = None,
    *,
    http: Any = None,
    builtins: Iterable[str] = DEFAULT_PLUGINS,
    extra: Iterable[tuple[str, object]] = (),
) -> ProviderRegistry:
    """Loads the built-in and installed plugins and instantiates their providers.

    ``env`` (the plugin settings, or an environment; default none) gives base-URL
    overrides, platform keys and the allow-list (``CHANGARRITO_LOAD_PLUGINS``); ``http`` is the
    shared client pool (``adapters.http.HttpClients``; when omitted, for listing only, a
    provider that calls out fails). Raises ``ConfigurationError`` when two plugins register
    the same provider id.
    """
    environment = _environment(env)
    context = ProviderContext(http=http or NoHttp(), env=environment)
    return ProviderRegistry.load(context, env=environment, builtins=builtins, extra=extra)


def _environment(given: PluginSettings | Mapping[str, str] | None) -> dict[str, str]:
    """The environment providers and the loader read; the settings' parsed allow-list wins
    over the variable of their environment."""
    if given is None:
        return {}
    if not isinstance(given, PluginSettings):
        return dict(given)
    env = dict(given.env)
    env.pop(ALLOW_LIST_ENV, None)
    if given.allow_list is not None:
        env[ALLOW_LIST_ENV] = ",".join(sorted(given.allow_list))
    return env


class NoHttp:
    """The client pool of a registry loaded only to be listed: no provider may call out."""

    def get(self, url: str) -> Any:
        raise RuntimeError(f"no HTTP client pool to reach {url}: pass load_plugins(http=...)")
