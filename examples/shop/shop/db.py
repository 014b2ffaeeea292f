"""The shop's engines and session factories, made at import from the settings.

``engine`` / ``Session``: async, for the API and its background tasks.
``sync_engine`` / ``SyncSession``: for the CLI and scripts.
"""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from shop import settings

__all__ = ["Session", "SyncSession", "engine", "sync_engine"]

engine = create_async_engine(settings.async_url(), pool_pre_ping=True)
Session = async_sessionmaker(engine, expire_on_commit=False)

sync_engine = create_engine(settings.sync_url(), pool_pre_ping=True)
SyncSession = sessionmaker(sync_engine, expire_on_commit=False)
