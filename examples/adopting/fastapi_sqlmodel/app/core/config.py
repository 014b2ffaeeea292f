"""The application's settings, read from the environment once, at import."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    DATABASE_URL: str = field(default_factory=lambda: _env("APP_DATABASE_URL", "sqlite:///app.db"))
    SECRET_KEY: str = field(default_factory=lambda: _env("APP_SECRET_KEY", "change-me"))
    FIRST_SUPERUSER: str = "admin@example.com"
    FIRST_SUPERUSER_PASSWORD: str = field(
        default_factory=lambda: _env("APP_FIRST_SUPERUSER_PASSWORD", "changethis")
    )


settings = Settings()
