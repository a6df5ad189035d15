"""Provider plugins: hookspecs, the loader, the registry and the built-in providers.

See ``docs/plugins.md``. Plugin authors need ``changarrito.hookimpl`` and
``changarrito.plugins.base``; the host uses ``ProviderRegistry.load``.
"""
