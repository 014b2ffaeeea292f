"""The shop's test set-up: its migrations into dbrewind's template, its clients.

dbrewind's fixtures do the rest: ``db_session`` / ``async_db_session`` (the
rollback sandbox), ``transactional_db`` (real commits, rewound after),
``module_db_session`` (a module's data), ``db_assert``.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from dbrewind.setup import alembic_setup
from httpx2 import ASGITransport, AsyncClient

HERE = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # The shop reads its database from SHOP_DATABASE_URL and makes its engines at import.
    # dbrewind points them at the test database, which must be a database of their kind:
    # a run on PostgreSQL or MariaDB (--dbrewind-url, DBREWIND_URL) configures the shop
    # for that kind of database too.
    url = config.getoption("dbrewind_url", None) or os.environ.get("DBREWIND_URL")
    if url and not os.environ.get("SHOP_DATABASE_URL"):
        os.environ["SHOP_DATABASE_URL"] = str(url)


@pytest.fixture(scope="session")
def dbrewind_setup() -> object:
    """The migrations: the schema and the reference data (currencies, countries, categories)."""
    return alembic_setup(HERE / "alembic.ini")


@pytest.fixture(scope="session")
async def client() -> AsyncIterator[AsyncClient]:
    """An HTTP client calling the app in this process (ASGI): no server, no thread."""
    from shop.api import app

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://shop") as c:
        yield c


@pytest.fixture
async def fresh_app_pool() -> None:
    """For a test that runs the app on another event loop (a server thread, a sync test
    client): the app's pooled connections belong to the loop that opened them, so the pool
    is emptied here first; the app's own shutdown empties it on its loop after."""
    from shop import db

    await db.engine.dispose()


@pytest.fixture
def live_server(transactional_db: object, fresh_app_pool: None) -> Iterator[str]:
    """The app served by uvicorn in a thread, on a free port: its base URL."""
    import uvicorn

    from shop.api import app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
