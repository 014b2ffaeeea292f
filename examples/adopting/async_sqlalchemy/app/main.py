"""The HTTP API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app import crud
from app.core.database_session import get_async_session
from app.models import User

app = FastAPI(title="pets")

SessionDep = Annotated[AsyncSession, Depends(get_async_session)]


class Credentials(BaseModel):
    email: str
    password: str


class UserOut(BaseModel):
    user_id: int
    email: str


class PetIn(BaseModel):
    name: str


class PetOut(BaseModel):
    pet_id: int
    name: str


async def current_user(session: SessionDep, authorization: Annotated[str, Header()] = "") -> User:
    token = authorization.removeprefix("Bearer ")
    user = await crud.user_by_token(session, token) if token else None
    if user is None:
        raise HTTPException(status_code=401, detail="Invalid token")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


@app.post("/auth/register", status_code=201)
async def register(body: Credentials, session: SessionDep) -> UserOut:
    if await crud.user_by_email(session, body.email) is not None:
        raise HTTPException(status_code=400, detail="Cannot use this email address")
    user = await crud.create_user(session, body.email, body.password)
    return UserOut(user_id=user.user_id, email=user.email)


@app.post("/auth/access-token")
async def access_token(body: Credentials, session: SessionDep) -> dict[str, str]:
    token = await crud.issue_token(session, body.email, body.password)
    if token is None:
        raise HTTPException(status_code=400, detail="Incorrect email or password")
    return {"access_token": token, "token_type": "Bearer"}


@app.get("/users/me")
async def read_me(user: CurrentUser) -> UserOut:
    return UserOut(user_id=user.user_id, email=user.email)


@app.delete("/users/me", status_code=204)
async def delete_me(user: CurrentUser, session: SessionDep) -> Response:
    await crud.delete_user(session, user)
    return Response(status_code=204)


@app.post("/pets", status_code=201)
async def create_pet(body: PetIn, user: CurrentUser, session: SessionDep) -> PetOut:
    pet = await crud.add_pet(session, user, body.name)
    return PetOut(pet_id=pet.pet_id, name=pet.name)


@app.get("/pets")
async def list_pets(user: CurrentUser, session: SessionDep) -> list[PetOut]:
    return [PetOut(pet_id=p.pet_id, name=p.name) for p in await crud.pets_of(session, user)]
