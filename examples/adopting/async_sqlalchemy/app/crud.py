"""Every write commits, as the API's handlers expect."""

from __future__ import annotations

import secrets

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import settings
from app.core.passwords import get_password_hash, verify_password
from app.models import AccessToken, Pet, User


async def create_user(session: AsyncSession, email: str, password: str) -> User:
    user = User(email=email, hashed_password=get_password_hash(password))
    session.add(user)
    await session.commit()
    return user


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def issue_token(session: AsyncSession, email: str, password: str) -> str | None:
    user = await user_by_email(session, email)
    if user is None or not verify_password(password, user.hashed_password):
        return None
    token = AccessToken(token=secrets.token_hex(settings.token_bytes), user_id=user.user_id)
    session.add(token)
    await session.commit()
    return token.token


async def user_by_token(session: AsyncSession, token: str) -> User | None:
    query = select(User).join(AccessToken).where(AccessToken.token == token)
    return await session.scalar(query)


async def add_pet(session: AsyncSession, user: User, name: str) -> Pet:
    pet = Pet(user_id=user.user_id, name=name)
    session.add(pet)
    await session.commit()
    return pet


async def pets_of(session: AsyncSession, user: User) -> list[Pet]:
    query = select(Pet).where(Pet.user_id == user.user_id).order_by(Pet.pet_id)
    return list(await session.scalars(query))


async def delete_user(session: AsyncSession, user: User) -> None:
    for table in (Pet, AccessToken):
        await session.execute(delete(table).where(table.user_id == user.user_id))
    await session.delete(user)
    await session.commit()
