"""Baseline layers: ``push_baseline`` and ``pop_baseline``, kept in the database."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ...exceptions import ConfigurationError, DbrewindError, LockTimeoutError, NotPreparedError
from ..base import RewindResult
from ._sql import (
    _COPY_DEPTH,
    LAYERS_TABLE,
    TABLES_TABLE,
    _empty_tables,
    _first_line,
    _ident,
    _row_counts,
    _sql,
    _transaction,
)
from .install import _Installing
from .tracking import _CLEAR_MARKS_SQL, _MARKED_SQL, _Baseline, _copy_name, _copy_sql

__all__ = ["_Layers"]


class _Layers(_Installing):
    """Layers pushed above the install's baseline, and popped back."""

    def push_baseline(self, conn: Connection) -> tuple[str, ...]:
        """Make the dirty tables' current rows and counters their baseline, one layer up.

        The dirty tables are the marked ones, the tables their FK cascades
        reach, and seeded tables found empty (a ``TRUNCATE``, which fires no
        trigger). In this order, for layer ``d`` (the current depth + 1):

        1. drop copies of layers ``>= d`` a crashed push or pop left (DDL);
        2. copy each dirty table with rows into ``dbrewind_b<d>_<name>`` and read
           its row count and ``AUTO_INCREMENT`` value (DDL);
        3. one transaction: the tables' current ``dbrewind_tables`` rows go into
           ``dbrewind_layers`` at depth ``d``, ``dbrewind_tables`` points at the
           new copies, and the marks read in step 1 are deleted;
        4. regenerate the two procedures from ``dbrewind_tables`` (DDL).

        A crash before 3 commits leaves only unreferenced copies (the next push,
        pop or install drops them) and the tables still marked. A crash after
        it leaves layer ``d`` recorded with the procedures still at ``d - 1``:
        :attr:`Installation.depth` says ``d``, so the next run pops it, and
        :meth:`pop_baseline` regenerates the procedures before anything else.
        """
        self._counters.wait()
        try:
            return self._push(conn)
        except DBAPIError as exc:
            raise self._step_error(
                conn,
                exc,
                "Pushing a baseline layer",
                "No layer was added unless Installation.depth says so; the tables stay "
                "marked, and pop_baseline() or a new prepare puts everything back.",
            ) from exc

    def _push(self, conn: Connection) -> tuple[str, ...]:
        try:
            baseline = self._baseline(conn)
            marked = _sql(conn, _MARKED_SQL).all()
            depth = self._depth(conn)
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc
        upto = max((int(row[1]) for row in marked), default=None)
        dirty = {row[0] for row in marked if row[0] in baseline}
        schema = self.inspect(conn)
        self._require_tables(conn, baseline, schema, "no baseline layer can be pushed")
        seeded = sorted(k for k, b in baseline.items() if b.rows > 0 and k not in dirty)
        dirty.update(_empty_tables(conn, seeded))
        if not dirty:
            return ()
        keys = sorted(dirty)
        layer = depth + 1
        self._drop_copies(conn, above=depth)
        self._stats_expiry(conn)
        counts = _row_counts(conn, keys)
        counters = self._auto_increments(conn)
        captured: dict[str, _Baseline] = {}
        for key in keys:
            table = schema.tables[key]
            copy = None
            if counts[key] > 0:
                copy = _copy_name(layer, key)
                _sql(conn, _copy_sql(copy, table))
            counter = counters.get(key) if table.auto_increment else None
            captured[key] = _Baseline(copy, counts[key], counter)
        with _transaction(conn):
            _sql(
                conn,
                f"INSERT INTO {_ident(LAYERS_TABLE)} "
                "(`depth`, `tbl`, `baseline_copy`, `baseline_rows`, `auto_increment`) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s)"] * len(keys)),
                tuple(v for key in keys for v in (layer, key, *baseline[key])),
            )
            self._write_baseline(conn, captured)
            if upto is not None:
                _sql(conn, _CLEAR_MARKS_SQL, (upto,))
        self._create_procedures(conn, schema)
        return tuple(keys)

    def pop_baseline(
        self, conn: Connection, depth: int, *, reset_sequences: bool = True
    ) -> RewindResult:
        """Drop the layers above ``depth``, then rewind: every table they captured is dirty.

        For each table captured above ``depth`` the baseline to go back to is
        the row its lowest such layer saved (the highest layers' rows are
        superseded). In this order:

        1. mark those tables dirty (committed);
        2. regenerate the two procedures with those baselines (DDL);
        3. one transaction: ``dbrewind_tables`` gets those rows back and the
           layers above ``depth`` are deleted;
        4. drop the layers' copies (DDL), then :meth:`rewind`.

        The layers stay recorded until everything they need is in place, so a
        crash before 3 commits leaves :attr:`Installation.depth` unchanged and the
        next ``pop_baseline`` does it all again (each step is idempotent); a
        crash after it leaves unreferenced copies (dropped by the next push,
        pop or install) and marked tables (the next rewind restores them).
        MySQL 8 has no ``CREATE OR REPLACE PROCEDURE``: a crash between its
        ``DROP PROCEDURE`` and ``CREATE`` leaves the installation incomplete
        (``Installation.installed`` is false), to be installed again.
        """
        self._counters.wait()
        try:
            current = self._depth(conn)
        except DBAPIError as exc:
            raise self._translate(exc, conn) from exc
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= current:
            raise ConfigurationError(
                f"pop_baseline(depth={depth!r}) on database {self._database(conn)!r}: "
                f"{current} layer(s) are pushed there, so give a depth from 0 to {current}."
            )
        if depth < current:
            try:
                self._pop(conn, depth)
            except DBAPIError as exc:
                raise self._step_error(
                    conn,
                    exc,
                    f"Popping the baseline layers above depth {depth}",
                    "The layers stay recorded until the pop is complete: call "
                    "pop_baseline() again, or prepare the database again.",
                ) from exc
        return self.rewind(conn, reset_sequences=reset_sequences)

    def _pop(self, conn: Connection, depth: int) -> None:
        rows = _sql(
            conn,
            "SELECT `tbl`, `baseline_copy`, `baseline_rows`, `auto_increment` "
            f"FROM {_ident(LAYERS_TABLE)} WHERE `depth` > %s ORDER BY `depth` DESC",
            (depth,),
        ).all()
        restored: dict[str, _Baseline] = {}
        for tbl, copy, count, counter in rows:  # the lowest layer's row is the last one
            restored[tbl] = _Baseline(copy, int(count), None if counter is None else int(counter))
        schema = self.inspect(conn)
        tracked = {**self._baseline(conn), **restored}
        self._require_tables(conn, tracked, schema, "the baseline layers cannot be popped")
        self.mark_dirty(conn, sorted(restored))
        self._create_procedures(conn, schema, overrides=restored)
        with _transaction(conn):
            self._write_baseline(conn, restored)
            _sql(conn, f"DELETE FROM {_ident(LAYERS_TABLE)} WHERE `depth` > %s", (depth,))
        self._drop_copies(conn, above=depth)

    def _depth(self, conn: Connection) -> int:
        """Layers pushed: the highest depth in ``dbrewind_layers`` (0 with none)."""
        sql = f"SELECT COALESCE(MAX(`depth`), 0) FROM {_ident(LAYERS_TABLE)}"
        return int(_sql(conn, sql).scalar_one())

    @staticmethod
    def _write_baseline(conn: Connection, baselines: Mapping[str, _Baseline]) -> None:
        """Set the ``dbrewind_tables`` rows of ``baselines`` (one statement)."""
        if not baselines:
            return
        keys = sorted(baselines)
        _sql(
            conn,
            f"REPLACE INTO {_ident(TABLES_TABLE)} "
            "(`tbl`, `baseline_copy`, `baseline_rows`, `auto_increment`) VALUES "
            + ", ".join(["(%s, %s, %s, %s)"] * len(keys)),
            tuple(v for key in keys for v in (key, *baselines[key])),
        )

    @staticmethod
    def _drop_copies(conn: Connection, *, above: int) -> None:
        """Drop the baseline copies of every layer above ``above`` (referenced or left over)."""
        names = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'dbrewind\\_b%'"
                )
            )
        ]
        doomed = sorted(
            name
            for name in names
            if (match := _COPY_DEPTH.match(name)) and match[1] and int(match[1]) > above
        )
        if doomed:
            _sql(conn, f"DROP TABLE IF EXISTS {', '.join(_ident(n) for n in doomed)}")

    def _step_error(
        self, conn: Connection, exc: DBAPIError, doing: str, after: str
    ) -> DbrewindError:
        """A driver error of a push or pop: lock waits and missing tracking keep their type."""
        translated = self._translate(exc, conn)
        if isinstance(translated, NotPreparedError | LockTimeoutError):
            return translated
        return DbrewindError(
            f"{doing} in database {self._database(conn)!r} failed: {_first_line(exc)}. {after}"
        )
