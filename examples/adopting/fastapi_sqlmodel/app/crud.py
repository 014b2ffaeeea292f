"""What the API does to the database; every write commits."""

from __future__ import annotations

from sqlmodel import Session, select

from app.core.security import hash_password, verify_password
from app.models import Item, User


def create_user(
    session: Session,
    *,
    email: str,
    password: str,
    full_name: str | None = None,
    is_superuser: bool = False,
) -> User:
    user = User(
        email=email,
        hashed_password=hash_password(password),
        full_name=full_name,
        is_superuser=is_superuser,
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email)).first()


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = get_user_by_email(session, email)
    if user is None or not verify_password(password, user.hashed_password):
        return None
    return user


def create_item(session: Session, *, owner: User, title: str, description: str | None) -> Item:
    assert owner.id is not None
    item = Item(title=title, description=description, owner_id=owner.id)
    session.add(item)
    session.commit()
    session.refresh(item)
    return item
