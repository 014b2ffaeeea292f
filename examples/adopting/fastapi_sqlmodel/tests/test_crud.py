from sqlmodel import Session, select

from app import crud
from app.core.config import settings
from app.models import Item, User


def test_only_the_first_superuser_is_there(db: Session) -> None:
    assert [u.email for u in db.exec(select(User)).all()] == [settings.FIRST_SUPERUSER]
    assert db.exec(select(Item)).all() == []


def test_the_password_is_stored_hashed(db: Session) -> None:
    user = crud.create_user(db, email="hashed@example.com", password="plain-password")
    assert user.hashed_password != "plain-password"
    assert crud.authenticate(db, "hashed@example.com", "plain-password") == user
    assert crud.authenticate(db, "hashed@example.com", "wrong") is None


def test_an_item_belongs_to_its_owner(db: Session) -> None:
    owner = crud.create_user(db, email="owner@example.com", password="owner-password")
    item = crud.create_item(db, owner=owner, title="Lamp", description=None)
    assert item.owner_id == owner.id
    assert db.exec(select(Item.title)).all() == ["Lamp"]
