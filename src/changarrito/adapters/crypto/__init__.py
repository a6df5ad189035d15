"""Encryption at rest for credential secrets.

``keyring`` holds the keys (``CHANGARRITO_ENCRYPTION_KEYS``); ``aesgcm`` and ``pgcrypto`` are
the two ciphers (``CHANGARRITO_CIPHER``); ``suite`` encrypts with one and decrypts any.
"""

from changarrito.adapters.crypto.suite import CipherSuite

__all__ = ["CipherSuite"]
