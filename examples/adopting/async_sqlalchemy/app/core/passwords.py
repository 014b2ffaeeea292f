"""scrypt password hashes: slow on purpose."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)


def get_password_hash(password: str) -> str:
    salt = secrets.token_bytes(16)
    return base64.b64encode(salt + _scrypt(password, salt)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    raw = base64.b64decode(password_hash)
    return hmac.compare_digest(raw[16:], _scrypt(password, raw[:16]))
