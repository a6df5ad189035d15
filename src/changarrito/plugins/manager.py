"""The host's entry into the plugin system: load every plugin, get a ``ProviderRegistry``.

``load_plugins(env)`` is what ``changarrito plugins`` and the composition root call; the
pieces live in ``loader`` (pluggy, entry points, allow-list) and ``registry`` (ids, table).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from changarrito.adapters.http import HttpClients
from changarrito.plugins.base import ProviderContext
from changarrito.plugins.loader import ALLOW_LIST_ENV, DEFAULT_PLUGINS, ENTRY_POINT_GROUP
from changarrito.plugins.registry import (
    ProviderInfo,
    ProviderRegistry,
    format_plugins_table,
)

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
    env: Mapping[str, str] | None = None,
    *,
    http: HttpClients | None = None,
    builtins: Iterable[str] = DEFAULT_PLUGINS,
    extra: Iterable[tuple[str, object]] = (),
) -> ProviderRegistry:
    """Loads the built-in and installed plugins and instantiates their providers.

    ``env`` (default ``os.environ``) gives base-URL overrides, platform keys and
    ``CHANGARRITO_LOAD_PLUGINS``; ``http`` is the shared client pool (a fresh one when omitted:
    it opens no connection until a provider calls out). Raises ``ConfigurationError`` when two
    plugins register the same provider id.
    """
    env = dict(os.environ if env is None else env)
    context = ProviderContext(http=http or HttpClients(), env=env)
    return ProviderRegistry.load(context, env=env, builtins=builtins, extra=extra)
