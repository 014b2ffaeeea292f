"""Splitting a SQL script into statements, each with the line it starts on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from ..dialects._syntax import SqlSyntax

__all__ = ["SqlSplitError", "Statement", "block_comment_end", "split"]

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
_DELIMITER_LINE = re.compile(r"DELIMITER[ \t]+(\S+)[ \t]*(?:\r?\n|$)", re.IGNORECASE)


def block_comment_end(sql: str, start: int, nests: bool) -> int | None:
    """Where the ``/* .. */`` comment opening at ``start`` ends (just past its ``*/``),
    or None when it is not closed. ``nests``: inner ``/*`` open another level
    (PostgreSQL), else the first ``*/`` closes it."""
    depth = 0
    i = start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth = depth + 1 if nests or depth == 0 else depth
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return None


class Statement(NamedTuple):
    """One statement of a script."""

    line: int
    """The line (from 1) its first character is on."""
    text: str
    """The statement as written, without its terminator and trailing blanks."""


class SqlSplitError(ValueError):
    """A string, quoted identifier, comment or dollar-quoted body is never closed."""

    def __init__(self, what: str, line: int) -> None:
        super().__init__(f"{what} opened on line {line} is never closed")
        self.line = line
        """The line the unclosed construct starts on."""


def split(sql: str, syntax: SqlSyntax) -> list[Statement]:
    """The statements of ``sql``, read by the rules of ``syntax``.

    Statements end at ``;`` (or the terminator a ``DELIMITER`` line chose,
    where the syntax has that command) outside quotes, comments and bodies.
    Pieces holding only comments are dropped; statements keep their inner
    comments, not the comments before them.

    :raises SqlSplitError: something opened is never closed; the message and
        :attr:`SqlSplitError.line` name the line it opened on.
    """
    return list(_Splitter(sql, syntax).statements())


class _Splitter:
    def __init__(self, sql: str, syntax: SqlSyntax) -> None:
        self.sql = sql
        self.syntax = syntax
        self.pos = 0
        self.line = 1

    def _advance_to(self, end: int) -> None:
        self.line += self.sql.count("\n", self.pos, end)
        self.pos = end

    def _comment_starts(self, i: int) -> bool:
        """Whether a comment (not an executable ``/*!``) starts at ``i``."""
        sql, syntax = self.sql, self.syntax
        ch = sql[i]
        if ch == "-":
            if not sql.startswith("--", i):
                return False
            return not syntax.dash_comment_needs_space or i + 2 >= len(sql) or sql[i + 2].isspace()
        if ch == "#":
            return syntax.hash_comments
        if ch == "/" and sql.startswith("/*", i):
            return not (syntax.executable_comments and sql.startswith("/*!", i))
        return False

    def statements(self) -> Iterator[Statement]:
        sql, syntax = self.sql, self.syntax
        n = len(sql)
        delimiter = ";"
        code_start = -1  # index of the current statement's first code character
        code_line = 0
        while self.pos < n:
            i = self.pos
            ch = sql[i]
            if code_start < 0 and syntax.delimiter_command and ch in "dD":
                match = _DELIMITER_LINE.match(sql, i)
                if match and (i == 0 or sql[i - 1] in "\n\r \t"):
                    delimiter = match.group(1)
                    self._advance_to(match.end())
                    continue
            if ch == "\n":
                self.line += 1
                self.pos += 1
                continue
            if ch.isspace():
                self.pos += 1
                continue
            if ch in "-#/" and self._comment_starts(i):
                if ch == "/":
                    self._skip_block_comment()
                else:
                    end = sql.find("\n", i)
                    self._advance_to(n if end < 0 else end)
                continue
            if sql.startswith(delimiter, i):
                end = i + len(delimiter)
                if code_start >= 0:
                    piece = sql[code_start:i]
                    complete = syntax.statement_complete
                    if complete is not None and not complete(piece):
                        # inside a body: CREATE TRIGGER .. BEGIN .. ; .. END
                        self._advance_to(end)
                        continue
                    yield Statement(code_line, piece.rstrip())
                    code_start = -1
                self._advance_to(end)
                continue
            if code_start < 0:
                code_start, code_line = i, self.line
            if ch in syntax.quotes:
                self._skip_quoted(ch)
            elif ch == "$" and syntax.dollar_quotes and self._dollar_quote_start():
                pass
            elif ch == "/" and sql.startswith("/*!", i):
                self._skip_block_comment()  # MySQL's executable comment: code, skipped whole
            else:
                self.pos += 1
        if code_start >= 0:
            yield Statement(code_line, sql[code_start:].rstrip())

    def _skip_block_comment(self) -> None:
        end = block_comment_end(self.sql, self.pos, self.syntax.nested_comments)
        if end is None:
            raise SqlSplitError("A /* comment", self.line)
        self._advance_to(end)

    def _skip_quoted(self, opening: str) -> None:
        sql, start_line, syntax = self.sql, self.line, self.syntax
        closing = "]" if opening == "[" else opening
        i = self.pos
        backslash = opening in syntax.backslash_escapes
        if syntax.escape_string_prefix and opening == "'" and i > 0 and sql[i - 1] in "eE":
            backslash = i == 1 or not (sql[i - 2].isalnum() or sql[i - 2] == "_")
        i += 1
        while i < len(sql):
            ch = sql[i]
            if backslash and ch == "\\":
                i += 2
                continue
            if ch == closing:
                if closing != "]" and sql.startswith(closing * 2, i):
                    i += 2
                    continue
                self._advance_to(i + 1)
                return
            i += 1
        kind = "A string" if opening == "'" else "A quoted identifier"
        raise SqlSplitError(kind, start_line)

    def _dollar_quote_start(self) -> bool:
        sql, i = self.sql, self.pos
        if i > 0 and (sql[i - 1].isalnum() or sql[i - 1] in "_$"):
            return False  # part of an identifier such as a$b
        match = _DOLLAR_TAG.match(sql, i)
        if match is None:
            return False
        tag = match.group(0)
        end = sql.find(tag, match.end())
        if end < 0:
            raise SqlSplitError(f"A dollar-quoted body {tag}", self.line)
        self._advance_to(end + len(tag))
        return True
