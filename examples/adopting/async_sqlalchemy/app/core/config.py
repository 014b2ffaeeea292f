"""The application's settings, from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    sqlalchemy_database_uri: str = field(
        default_factory=lambda: os.environ.get("APP_DATABASE_URL", "sqlite+aiosqlite:///app.db")
    )
    token_bytes: int = 32


settings = Settings()
