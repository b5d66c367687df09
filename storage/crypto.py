"""Encryption at rest for chat tokens (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key comes from ``COSTDNA_SECRET_KEY`` (any string; a Fernet key is derived from it). Without it,
a random key is created once in the data directory (mode 0600), so a laptop install works and the
database alone never reveals a token. Losing the key means re-installing the bot, nothing worse.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["InvalidToken", "decrypt", "encrypt", "fernet"]


def _key_file(data_dir: Path) -> bytes:
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    return path.read_bytes().strip()


def fernet_for(secret: str | None, data_dir: Path) -> Fernet:
    if secret:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))
    return Fernet(_key_file(data_dir))


@lru_cache(maxsize=1)
def fernet() -> Fernet:
    from config.settings import get_settings

    s = get_settings()
    return fernet_for(s.secret_key.get_secret_value() if s.secret_key else None, s.data_dir)


def encrypt(token: str) -> bytes:
    return fernet().encrypt(token.encode())


def decrypt(blob: bytes) -> str:
    """Raises ``InvalidToken`` when the key changed or the blob was tampered with."""
    return fernet().decrypt(bytes(blob)).decode()
