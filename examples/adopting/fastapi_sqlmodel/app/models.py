"""Tables and the API's shapes."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    __tablename__ = "user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=255, unique=True, index=True)
    hashed_password: str = Field(max_length=255)
    full_name: str | None = Field(default=None, max_length=255)
    is_superuser: bool = False


class Item(SQLModel, table=True):
    __tablename__ = "item"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=255)
    description: str | None = Field(default=None, max_length=255)
    owner_id: int = Field(foreign_key="user.id", ondelete="CASCADE")


class UserCreate(SQLModel):
    email: str
    password: str
    full_name: str | None = None


class UserPublic(SQLModel):
    id: int
    email: str
    full_name: str | None
    is_superuser: bool


class ItemCreate(SQLModel):
    title: str
    description: str | None = None


class ItemPublic(SQLModel):
    id: int
    title: str
    description: str | None
    owner_id: int


class Login(SQLModel):
    username: str
    password: str


class Token(SQLModel):
    access_token: str
    token_type: str = "bearer"
