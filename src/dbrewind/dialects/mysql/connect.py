"""Connecting: the drivers' defaults, a bounded handshake, and what a connect failure means."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from ...exceptions import (
    AuthenticationError,
    ConnectionFailedError,
    DatabaseNotFoundError,
    ServerUnreachableError,
    WrongServerError,
)
from ..base import CONNECT_TIMEOUT, Dialect

__all__ = ["_Connecting"]

# Connecting: server (1xxx) and client (2xxx) error numbers, by what they mean.
_LOST_DURING_QUERY = 2013  # "Lost connection to MySQL server during query"
_CONNECT_CODES: dict[int, type[ConnectionFailedError]] = {
    1044: AuthenticationError,  # access denied for user to database
    1045: AuthenticationError,  # access denied for user (using password: YES/NO)
    1129: AuthenticationError,  # host blocked because of many connection errors
    1130: AuthenticationError,  # host is not allowed to connect
    1251: AuthenticationError,  # client does not support the authentication protocol
    1698: AuthenticationError,  # access denied (unix_socket / auth plugin)
    2059: AuthenticationError,  # authentication plugin cannot be loaded
    1049: DatabaseNotFoundError,  # unknown database
    2002: ServerUnreachableError,  # can't connect through the socket
    2003: ServerUnreachableError,  # can't connect to the server (refused, timed out)
    2005: ServerUnreachableError,  # unknown server host
    2007: WrongServerError,  # protocol mismatch
    2012: WrongServerError,  # error in server handshake
    2027: WrongServerError,  # malformed packet
}


_ASYNC_DRIVERS = ("aiomysql", "asyncmy")
_DRIVERS = ("pymysql", "mysqldb", *_ASYNC_DRIVERS)


class _Connecting(Dialect):
    """Connect defaults and failures for PyMySQL, mysqlclient, aiomysql and asyncmy."""

    def connect_failure(self, error: BaseException) -> type[ConnectionFailedError] | None:
        """The client or server error number (pymysql, mysqlclient, aiomysql, asyncmy all
        put it first in ``args``); else the driver's message, then the base's OS errors."""
        args = getattr(error, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        said = str(error).lower()
        if code == _LOST_DURING_QUERY:
            # at connect time: the port took the connection, but no server greeting came
            # (a MySQL server sends one at once; PostgreSQL waits for the client to speak)
            return WrongServerError
        kind = _CONNECT_CODES.get(code) if code is not None else None
        if kind is not None:
            return kind
        if "packet sequence number wrong" in said or "malformed packet" in said:
            return WrongServerError
        return super().connect_failure(error)

    def connect_defaults(self, driver: str) -> dict[str, object]:
        """A bounded wait for the TCP connect (aiomysql's default is 60 s): 10 s, unless
        the URL says; :meth:`open_connection` bounds the greeting the same."""
        return {"connect_timeout": CONNECT_TIMEOUT} if driver in _DRIVERS else {}

    def driver_socket(self, dbapi_connection: Any) -> int | None:
        """PyMySQL's socket (``_sock``), mysqlclient's ``fileno()``; aiomysql's
        transport's, unless aiomysql knows it is closed (its event loop reads the socket)."""
        conn = getattr(dbapi_connection, "driver_connection", None) or dbapi_connection
        try:
            sock = getattr(conn, "_sock", None)
            if sock is not None:
                return int(sock.fileno())
            writer = getattr(conn, "_writer", None)
            if writer is not None:
                return (
                    None if conn.closed else int(writer.transport.get_extra_info("socket").fileno())
                )
            fileno = getattr(conn, "fileno", None)
            return int(fileno()) if callable(fileno) else None
        except Exception:  # closed, or a driver of another shape: the ping finds out
            return None

    def open_connection(
        self,
        driver: str,
        connect: Callable[..., Any],
        cargs: Sequence[Any],
        cparams: dict[str, Any],
    ) -> Any:
        """The drivers' ``connect_timeout`` bounds only the TCP connect; the server's
        greeting is then awaited with no limit. A port where a server of another kind
        waits for the client to speak first (PostgreSQL does, until its 60 s
        ``authentication_timeout``) would hold the run that long: the whole handshake
        gets the URL's ``connect_timeout`` (default ``CONNECT_TIMEOUT`` seconds), and the
        connection's queries keep the URL's ``read_timeout`` (none unless it sets one)."""
        seconds = float(cparams.get("connect_timeout") or CONNECT_TIMEOUT)
        if driver == "pymysql" and "read_timeout" not in cparams:
            conn = connect(*cargs, **{**cparams, "read_timeout": seconds})
            # PyMySQL applies this attribute to the socket before each read
            conn._read_timeout = None
            return conn
        if driver in _ASYNC_DRIVERS and "async_creator_fn" not in cparams:
            opener = importlib.import_module(driver).connect

            async def bounded(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await asyncio.wait_for(opener(*args, **kwargs), seconds)
                except TimeoutError:
                    raise TimeoutError(f"no server greeting within {seconds:g} s") from None

            return connect(*cargs, **{**cparams, "async_creator_fn": bounded})
        return connect(*cargs, **cparams)
