"""Changarrito: per-shop WhatsApp, LLM and payment credentials with platform fallback."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marks a plugin's hook implementations: ``from changarrito import hookimpl``.
hookimpl = pluggy.HookimplMarker("changarrito")

__all__ = ["__version__", "hookimpl"]
