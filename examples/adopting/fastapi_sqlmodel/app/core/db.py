"""The engine, made at import from the settings, and the first superuser."""

from __future__ import annotations

from sqlmodel import Session, create_engine, select

from app import crud
from app.core.config import settings
from app.models import User

engine = create_engine(settings.DATABASE_URL)


def init_db(session: Session) -> None:
    """Create the first superuser if there is none (run after the migrations)."""
    found = session.exec(select(User).where(User.email == settings.FIRST_SUPERUSER)).first()
    if found is None:
        crud.create_user(
            session,
            email=settings.FIRST_SUPERUSER,
            password=settings.FIRST_SUPERUSER_PASSWORD,
            full_name="Admin",
            is_superuser=True,
        )
