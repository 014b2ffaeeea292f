"""Password hashing (deliberately slow, as it should be) and signed access tokens."""

from __future__ import annotations

import hashlib
import hmac
import os

from .config import settings

ITERATIONS = 200_000


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
    return f"{salt.hex()}${digest.hex()}"


def verify_password(password: str, hashed: str) -> bool:
    salt, digest = hashed.split("$")
    again = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), ITERATIONS)
    return hmac.compare_digest(again.hex(), digest)


def create_access_token(user_id: int) -> str:
    signature = hmac.new(settings.SECRET_KEY.encode(), str(user_id).encode(), "sha256")
    return f"{user_id}.{signature.hexdigest()}"


def read_access_token(token: str) -> int | None:
    user_id, _, signature = token.partition(".")
    if not user_id.isdigit():
        return None
    expected = create_access_token(int(user_id)).partition(".")[2]
    return int(user_id) if hmac.compare_digest(expected, signature) else None
