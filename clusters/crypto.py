"""Encryption at rest for cluster credentials (Fernet: AES-128-CBC with HMAC-SHA256).

``settings.CREDENTIAL_ENCRYPTION_KEYS`` lists keys newest first. New data is encrypted with the first; any of
them decrypts, so a new key can be put in front, ``manage.py rotate_credentials_key`` re-encrypts every row, and
the old key is then dropped.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from kube import CredentialsUnreadable

__all__ = ["CredentialsUnreadable", "decrypt", "encrypt", "rotate"]


def _fernet() -> MultiFernet:
    keys = settings.CREDENTIAL_ENCRYPTION_KEYS
    if not keys:
        raise ImproperlyConfigured("CREDENTIAL_ENCRYPTION_KEYS is empty.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured("An entry of CREDENTIAL_ENCRYPTION_KEYS is not a Fernet key.") from error


def encrypt(plaintext: bytes) -> str:
    return _fernet().encrypt(plaintext).decode()


def decrypt(token: str) -> bytes:
    try:
        return _fernet().decrypt(token.encode())
    except InvalidToken:
        raise CredentialsUnreadable("no configured key decrypts these credentials") from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the newest key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("no configured key decrypts these credentials") from None
