"""What one statement does to a transaction, read from its text (no I/O, leading comments skipped).

The sandboxes ask these questions of every statement, so each answers from
the first few characters where it can.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from ..dialects._syntax import SqlSyntax
from .split import block_comment_end

__all__ = [
    "Control",
    "autocommit_setting",
    "body_start",
    "commits_implicitly",
    "is_read",
    "transaction_control",
]

ControlKind = Literal[
    "begin", "commit", "rollback", "savepoint", "release", "rollback_to", "two_phase"
]


class Control(NamedTuple):
    """A transaction-control statement."""

    kind: ControlKind
    """``begin``, ``commit``, ``rollback``, ``savepoint``, ``release``,
    ``rollback_to``, or ``two_phase`` (``PREPARE TRANSACTION``, ``COMMIT
    PREPARED``, ``ROLLBACK PREPARED``, ``XA ..``)."""
    name: str | None = None
    """The savepoint's name as written (quotes kept), for the savepoint kinds."""
    chain: bool = False
    """``COMMIT AND CHAIN`` / ``ROLLBACK AND CHAIN``: a new transaction begins at once."""


_READ_HEADS = ("SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "DESC ", "VALUES", "PRAGMA")
_CONTROL_HEADS = frozenset({"BEG", "STA", "COM", "END", "ROL", "ABO", "SAV", "REL", "PRE"})
_BEGIN_NEXT = frozenset(
    {"TRANSACTION", "WORK", "DEFERRED", "IMMEDIATE", "EXCLUSIVE", "ISOLATION", "READ", "DEFERRABLE"}
)
_WORD = re.compile(r"[A-Za-z_@][A-Za-z0-9_@$.]*")
_ASSIGNMENT = re.compile(
    r"(?:\A|,)\s*(?:(?:SESSION|LOCAL)\s+|@@(?:SESSION\.|LOCAL\.)?)?"
    r"([A-Za-z_][A-Za-z0-9_]*)\s*:?=\s*([^\s,;]+)",
    re.IGNORECASE,
)
_OFF = frozenset({"0", "OFF", "FALSE"})


def body_start(statement: str, syntax: SqlSyntax) -> int:
    """Index of the first character after leading whitespace and comments.

    ``len(statement)`` when nothing else follows (or a comment is never closed).
    """
    if statement[:1].isalpha():
        return 0
    n = len(statement)
    i = 0
    while i < n:
        ch = statement[i]
        if ch.isspace():
            i += 1
        elif ch == "-" and statement.startswith("--", i):
            if syntax.dash_comment_needs_space and i + 2 < n and not statement[i + 2].isspace():
                return i
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "#" and syntax.hash_comments:
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and statement.startswith("/*", i):
            if syntax.executable_comments and statement.startswith("/*!", i):
                return i
            closed = block_comment_end(statement, i, syntax.nested_comments)
            i = n if closed is None else closed
        else:
            return i
    return n


def is_read(statement: str, syntax: SqlSyntax) -> bool:
    """Whether the statement only reads (``SELECT``, ``SHOW``, ``EXPLAIN``, ``PRAGMA``, ...).

    ``WITH`` counts as a write: a common table expression may lead to one.
    """
    start = body_start(statement, syntax)
    return statement[start : start + 8].upper().startswith(_READ_HEADS)


def _words(statement: str, start: int, count: int) -> list[str]:
    """The first ``count`` words from ``start``, upper-case (``@@session.x`` is one word)."""
    return [w.upper() for w in _WORD.findall(statement, start, start + 24 * count)[:count]]


def transaction_control(statement: str, syntax: SqlSyntax) -> Control | None:
    """The transaction command the statement is, or None for any other statement.

    Recognised: ``BEGIN [WORK | TRANSACTION | DEFERRED | IMMEDIATE | EXCLUSIVE
    | ISOLATION .. | READ .. | [NOT] DEFERRABLE]``, ``START TRANSACTION ..``,
    ``COMMIT`` / ``END`` / ``ROLLBACK`` / ``ABORT`` ``[WORK | TRANSACTION]
    [AND [NO] CHAIN]``, ``SAVEPOINT name``, ``RELEASE [SAVEPOINT] name``,
    ``ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name``, and the two-phase
    commands. One trailing ``;`` is allowed; a second statement after it is
    not (the answer is then None). ``BEGIN NOT ATOMIC`` (a MariaDB block) is
    not transaction control.
    """
    start = body_start(statement, syntax)
    head = statement[start : start + 3].upper()
    if head not in _CONTROL_HEADS and not (head[:2] == "XA" and head[2:].isspace()):
        return None
    text = statement[start:].rstrip()
    if text.endswith(";"):
        text = text[:-1]
    words = text.split(None, 8)
    upper = [w.upper() for w in words]
    first = upper[0]
    rest = upper[1:]
    if first == "BEGIN":
        if ";" in text:
            return None
        if not rest or rest[0] in _BEGIN_NEXT or rest[:2] == ["NOT", "DEFERRABLE"]:
            return Control("begin")
        return None
    if first == "START":
        return Control("begin") if rest[:1] == ["TRANSACTION"] and ";" not in text else None
    if first == "XA" or (first == "PREPARE" and rest[:1] == ["TRANSACTION"]):
        return Control("two_phase")
    if first in ("COMMIT", "ROLLBACK") and rest[:1] == ["PREPARED"]:
        return Control("two_phase")
    if first == "SAVEPOINT":
        return Control("savepoint", words[1]) if len(words) == 2 else None
    if first == "RELEASE":
        if rest[:1] == ["SAVEPOINT"]:
            return Control("release", words[2]) if len(words) == 3 else None
        return Control("release", words[1]) if len(words) == 2 else None
    if first not in ("COMMIT", "END", "ROLLBACK", "ABORT"):
        return None
    at = 2 if rest[:1] in (["WORK"], ["TRANSACTION"]) else 1
    tail = upper[at:]
    if first == "ROLLBACK" and tail[:1] == ["TO"]:
        at += 2 if tail[1:2] == ["SAVEPOINT"] else 1
        return Control("rollback_to", words[at]) if len(words) == at + 1 else None
    kind: ControlKind = "commit" if first in ("COMMIT", "END") else "rollback"
    if not tail:
        return Control(kind)
    if tail == ["AND", "CHAIN"]:
        return Control(kind, chain=True)
    if tail == ["AND", "NO", "CHAIN"]:
        return Control(kind)
    return None


def autocommit_setting(statement: str, syntax: SqlSyntax) -> bool | None:
    """For a ``SET`` of the session's autocommit mode: True when it switches it on, else False.

    None when the statement does not set it, and always where the syntax has
    no such variable. A value other than ``0``/``OFF``/``FALSE`` (``DEFAULT``,
    a variable) counts as on.
    """
    variable = syntax.autocommit_variable
    if variable is None:
        return None
    start = body_start(statement, syntax)
    head = statement[start : start + 4].upper()
    if head[:3] != "SET" or head[3:].isalnum() or head[3:] == "_":
        return None
    found: bool | None = None
    for match in _ASSIGNMENT.finditer(statement[start + 3 :]):
        if match.group(1).lower() == variable:
            found = match.group(2).upper() not in _OFF
    return found


def may_commit_unseen(statement: str, syntax: SqlSyntax) -> bool:
    """Whether the statement may commit and begin again inside itself, so that the
    transaction state after it shows nothing (:attr:`SqlSyntax.commits_unseen`)."""
    if not syntax.commits_unseen:
        return False
    words = _words(statement, body_start(statement, syntax), 1)
    return bool(words) and words[0] in syntax.commits_unseen


def commits_implicitly(statement: str, syntax: SqlSyntax) -> bool:
    """Whether the statement commits the open transaction by itself (MySQL's DDL and others).

    Read from its first words against :attr:`SqlSyntax.implicit_commit` and
    its exceptions, and from switching autocommit on.
    """
    if not syntax.implicit_commit:
        return False
    words = _words(statement, body_start(statement, syntax), 4)
    beginnings = [" ".join(words[:k]) for k in range(1, len(words) + 1)]
    if any(b in syntax.implicit_commit_exceptions for b in beginnings):
        return False
    if any(b in syntax.implicit_commit for b in beginnings):
        return True
    return autocommit_setting(statement, syntax) is True
