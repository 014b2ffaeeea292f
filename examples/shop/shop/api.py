"""The shop's HTTP API (FastAPI, async). Run it with ``uvicorn shop.api:app``.

Each request gets an ``AsyncSession`` from :data:`shop.db.Session` and runs the
business rules of :mod:`shop.services` through ``run_sync``. Placing an order
sends its confirmation in a background task, after the response, on a session
of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as SyncSession
from sqlalchemy.orm import selectinload

from shop import db, services
from shop.models import Currency, Order, Product

__all__ = ["app", "send_confirmation"]

T = TypeVar("T")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await db.engine.dispose()  # the pool's connections belong to this server's event loop


app = FastAPI(title="shop", lifespan=lifespan)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with db.Session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def run(session: AsyncSession, rule: Callable[[SyncSession], T]) -> T:
    """A business rule on the request's session; the shop's refusals as HTTP errors."""
    try:
        return await session.run_sync(rule)
    except services.NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except services.ShopError as exc:
        raise HTTPException(409, str(exc)) from exc
    except IntegrityError as exc:
        await session.rollback()
        raise HTTPException(409, "that conflicts with what is there") from exc


class OrganisationIn(BaseModel):
    name: str
    country_code: str = Field(min_length=2, max_length=2)


class ProductIn(BaseModel):
    sku: str
    name: str
    category: str
    price_cents: int
    stock: int = 0


class LineIn(BaseModel):
    product_id: int
    quantity: int


class OrderIn(BaseModel):
    user_id: int
    lines: list[LineIn]


def product_out(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "sku": product.sku,
        "name": product.name,
        "price_cents": product.price_cents,
        "currency": product.currency_code,
        "stock": product.stock,
    }


def order_out(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "number": order.number,
        "status": order.status.value,
        "currency": order.currency_code,
        "total_cents": order.total_cents,
        "lines": [
            {"product_id": line.product_id, "quantity": line.quantity} for line in order.lines
        ],
        "confirmed": order.confirmation_sent_at is not None,
    }


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/currencies")
async def currencies(session: SessionDep) -> list[dict[str, Any]]:
    rows = await session.scalars(select(Currency).order_by(Currency.code))
    return [{"code": c.code, "name": c.name, "exponent": c.exponent} for c in rows]


@app.post("/organisations", status_code=201)
async def create_organisation(body: OrganisationIn, session: SessionDep) -> dict[str, Any]:
    org = await run(
        session, lambda s: services.register_organisation(s, body.name, body.country_code)
    )
    return {"id": org.id, "name": org.name, "country": org.country_code}


@app.get("/organisations/{organisation_id}/products")
async def list_products(organisation_id: int, session: SessionDep) -> list[dict[str, Any]]:
    products = await run(session, lambda s: services.active_products(s, organisation_id))
    return [product_out(p) for p in products]


@app.post("/organisations/{organisation_id}/products", status_code=201)
async def create_product(
    organisation_id: int, body: ProductIn, session: SessionDep
) -> dict[str, Any]:
    product = await run(
        session, lambda s: services.add_product(s, organisation_id, **body.model_dump())
    )
    return product_out(product)


@app.delete("/products/{product_id}", status_code=204)
async def delete_product(product_id: int, session: SessionDep) -> None:
    await run(session, lambda s: services.retire_product(s, product_id))


@app.post("/orders", status_code=201)
async def create_order(
    body: OrderIn, session: SessionDep, background: BackgroundTasks
) -> dict[str, Any]:
    lines = [(line.product_id, line.quantity) for line in body.lines]
    order = await run(session, lambda s: order_out(services.place_order(s, body.user_id, lines)))
    background.add_task(send_confirmation, order["id"])
    return order


@app.get("/orders/{order_id}")
async def get_order(order_id: int, session: SessionDep) -> dict[str, Any]:
    order = await session.scalar(
        select(Order).where(Order.id == order_id).options(selectinload(Order.lines))
    )
    if order is None:
        raise HTTPException(404, f"no order {order_id}")
    return order_out(order)


@app.post("/orders/{order_id}/cancel")
async def cancel(order_id: int, session: SessionDep) -> dict[str, Any]:
    return await run(session, lambda s: order_out(services.cancel_order(s, order_id)))


@app.get("/organisations/{organisation_id}/revenue")
async def revenue(organisation_id: int, session: SessionDep) -> dict[str, int]:
    return {"total_cents": await run(session, lambda s: services.revenue(s, organisation_id))}


async def send_confirmation(order_id: int) -> None:
    """The background task: the order's confirmation, on a session of its own."""
    async with db.Session() as session:
        await session.run_sync(lambda s: services.send_order_confirmation(s, order_id))
