"""How each database writes SQL, as far as splitting scripts and classifying statements needs.

Plain data (it imports only the table of backend names): :mod:`dbrewind._sql`
takes a :class:`SqlSyntax` and holds no knowledge of any one database itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from .._backends import Backend, backend_named

__all__ = [
    "MYSQL",
    "PORTABLE",
    "POSTGRESQL",
    "SQLITE",
    "STANDARD",
    "SqlSyntax",
    "syntax_for",
]


@dataclass(frozen=True)
class SqlSyntax:
    """The lexical rules and statement facts of one database's SQL."""

    name: str
    """Which database (or family of scripts) this describes."""
    quotes: str = "'\""
    """Characters that open a quoted string or identifier, closed by the same
    character (doubled inside to stand for itself); ``[`` is closed by ``]``."""
    backslash_escapes: str = ""
    """Quote characters inside whose quotes a backslash escapes the next character."""
    escape_string_prefix: bool = False
    """``E'..'`` strings take backslash escapes (PostgreSQL)."""
    dollar_quotes: bool = False
    """``$$ .. $$`` and ``$tag$ .. $tag$`` bodies (PostgreSQL)."""
    hash_comments: bool = False
    """``#`` starts a comment to the end of the line (MySQL)."""
    dash_comment_needs_space: bool = False
    """``--`` starts a comment only when whitespace follows (MySQL: ``5--1`` is arithmetic)."""
    nested_comments: bool = False
    """``/* /* */ */`` nests (PostgreSQL)."""
    executable_comments: bool = False
    """``/*! .. */`` is code, not a comment (MySQL)."""
    delimiter_command: bool = False
    """A ``DELIMITER //`` line changes the statement terminator (the MySQL client's)."""
    statement_complete: Callable[[str], bool] | None = None
    """Whether a piece ending in ``;`` is a whole statement; when it says no,
    the ``;`` is inside a body (SQLite's trigger ``BEGIN .. END``)."""
    implicit_commit: frozenset[str] = frozenset()
    """Statement beginnings (upper-case words joined by one space: ``"ALTER"``,
    ``"LOAD INDEX"``) that commit the open transaction implicitly."""
    implicit_commit_exceptions: frozenset[str] = frozenset()
    """Beginnings, written the same way, that do not, although a shorter
    beginning in :attr:`implicit_commit` says so (``"CREATE TEMPORARY"``)."""
    autocommit_variable: str | None = None
    """The session variable whose switching on commits (MySQL's ``autocommit``)."""
    commits_unseen: frozenset[str] = frozenset()
    """Beginnings of statements that may commit and open a new transaction inside the
    one statement (MySQL's ``CALL`` of a procedure that runs DDL, ``EXECUTE`` of such
    a ``CALL``): the driver's transaction state after them cannot show it."""


def _sqlite_complete(piece: str) -> bool:
    return sqlite3.complete_statement(piece + ";")


STANDARD = SqlSyntax("standard")
"""Standard SQL: ``'..'`` strings, ``".."`` identifiers, ``--`` and ``/* */`` comments."""

SQLITE = SqlSyntax(
    "sqlite",
    quotes="'\"`[",
    statement_complete=_sqlite_complete,
)
"""SQLite: also backtick and ``[..]`` identifiers, and trigger bodies."""

POSTGRESQL = SqlSyntax(
    "postgresql",
    escape_string_prefix=True,
    dollar_quotes=True,
    nested_comments=True,
)
"""PostgreSQL: also ``E'..'`` strings, dollar quoting and nested comments."""

# MariaDB's "SQL statements that cause an implicit commit" (and MySQL's). Not
# here: LOAD DATA (engine-dependent), UNLOCK TABLES (commits only while LOCK
# TABLES holds tables, which is refused itself), BEGIN and START TRANSACTION
# (transaction control). XA statements are two-phase commit, refused by the
# server inside an open local transaction rather than committing it.
_MYSQL_IMPLICIT_COMMIT = frozenset(
    {
        "ALTER", "ANALYZE", "CACHE", "CHECK", "CREATE", "DROP", "FLUSH", "GRANT",
        "INSTALL", "LOAD INDEX", "LOCK", "OPTIMIZE", "RENAME", "REPAIR", "RESET",
        "REVOKE", "SET PASSWORD", "TRUNCATE", "UNINSTALL",
    }
)  # fmt: skip

MYSQL = SqlSyntax(
    "mysql",
    quotes="'\"`",
    backslash_escapes="'\"",
    hash_comments=True,
    dash_comment_needs_space=True,
    executable_comments=True,
    delimiter_command=True,
    implicit_commit=_MYSQL_IMPLICIT_COMMIT,
    implicit_commit_exceptions=frozenset(
        {"CREATE TEMPORARY", "CREATE OR REPLACE TEMPORARY", "DROP TEMPORARY"}
    ),
    autocommit_variable="autocommit",
    commits_unseen=frozenset({"CALL", "EXECUTE"}),
)
"""MySQL and MariaDB: backticks, backslash escapes, ``#`` comments, ``DELIMITER``."""

PORTABLE = SqlSyntax(
    "portable",
    quotes="'\"`",
    backslash_escapes="'",
    dollar_quotes=True,
    delimiter_command=True,
)
"""A script for no database in particular: backticks, backslash escapes in
``'..'``, dollar quoting and ``DELIMITER`` lines are all understood."""

_BY_BACKEND: dict[Backend, SqlSyntax] = {
    "sqlite": SQLITE,
    "postgresql": POSTGRESQL,
    "mysql": MYSQL,
}


def syntax_for(backend: str) -> SqlSyntax:
    """The syntax of ``backend`` (any name :func:`~dbrewind._backends.backend_named`
    knows: a backend, a URL scheme, a SQLAlchemy dialect name); standard SQL otherwise."""
    known = backend_named(backend)
    return STANDARD if known is None else _BY_BACKEND[known]
