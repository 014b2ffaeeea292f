"""The HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from sqlmodel import Session, select

from app import crud
from app.core.db import engine
from app.core.security import create_access_token, read_access_token
from app.models import Item, ItemCreate, ItemPublic, Login, Token, User, UserCreate, UserPublic

app = FastAPI(title="items")


def get_db() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def get_current_user(session: SessionDep, authorization: Annotated[str, Header()] = "") -> User:
    scheme, _, token = authorization.partition(" ")
    user_id = read_access_token(token) if scheme.lower() == "bearer" else None
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        raise HTTPException(status_code=401, detail="Not authenticated")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


@app.post("/login/access-token")
def login(body: Login, session: SessionDep) -> Token:
    user = crud.authenticate(session, body.username, body.password)
    if user is None:
        raise HTTPException(status_code=400, detail="Incorrect email or password")
    assert user.id is not None
    return Token(access_token=create_access_token(user.id))


@app.get("/users/me", response_model=UserPublic)
def read_me(user: CurrentUser) -> User:
    return user


@app.post("/users/", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, session: SessionDep, user: CurrentUser) -> User:
    if not user.is_superuser:
        raise HTTPException(status_code=403, detail="Not enough privileges")
    if crud.get_user_by_email(session, body.email) is not None:
        raise HTTPException(status_code=409, detail="A user with this email already exists")
    return crud.create_user(
        session, email=body.email, password=body.password, full_name=body.full_name
    )


@app.post("/items/", response_model=ItemPublic, status_code=201)
def create_item(body: ItemCreate, session: SessionDep, user: CurrentUser) -> Item:
    return crud.create_item(session, owner=user, title=body.title, description=body.description)


@app.get("/items/", response_model=list[ItemPublic])
def read_items(session: SessionDep, user: CurrentUser) -> list[Item]:
    query = select(Item).order_by(Item.id)  # type: ignore[arg-type]
    if not user.is_superuser:
        query = query.where(Item.owner_id == user.id)
    return list(session.exec(query).all())


@app.delete("/items/{item_id}", status_code=204)
def delete_item(item_id: int, session: SessionDep, user: CurrentUser) -> Response:
    item = session.get(Item, item_id)
    if item is None or (item.owner_id != user.id and not user.is_superuser):
        raise HTTPException(status_code=404, detail="Item not found")
    session.delete(item)
    session.commit()
    return Response(status_code=204)
