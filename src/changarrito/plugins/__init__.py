"""Provider plugins: hookspecs, the loader, the registry and the built-in providers.

See ``docs/plugins.md``. Plugin authors import from one public module, ``changarrito.plugin``;
the host uses ``ProviderRegistry.load``.
"""
