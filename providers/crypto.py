"""Encryption of provider keys at rest: MultiFernet over FIELD_ENCRYPTION_KEYS (the first key is primary)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured keys; nothing may be sent with it."""


class EncryptionNotConfigured(Exception):
    pass


def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.FIELD_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        raise EncryptionNotConfigured(
            "FIELD_ENCRYPTION_KEYS is not set, so provider keys cannot be stored. `make run` writes one into .env."
        )
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError as exc:
        raise EncryptionNotConfigured("FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key.") from exc


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "The stored key cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS "
            "(were the keys changed?). Enter the key again in Settings."
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a token under the primary key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("A stored key cannot be decrypted with any configured key.") from exc


def generate_key() -> str:
    return Fernet.generate_key().decode()
