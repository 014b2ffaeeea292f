"""Errors raised by dbrewind.

Every error derives from :class:`DbrewindError`, and every message names the
object concerned (a database, a table, a URL with its password hidden) and
says what to do next::

    DbrewindError
     +-- ConfigurationError          bad URL, unknown scheme, bad option
     |    +-- DriverNotInstalledError    the DB-API driver for a URL is missing
     |    +-- SetupError                 the schema setup ran but missed the test
     |                                   database (an env.py that migrates its own)
     +-- ConnectionFailedError       the database server could not be used at all
     |    +-- ServerUnreachableError     nothing answers at the URL's host and port
     |    |                              (refused, unknown host, no answer in time)
     |    +-- AuthenticationError        the server refused the URL's user or password
     |    +-- WrongServerError           something answers at the port, but not a
     |    |                              server of the URL's kind (another protocol)
     |    |    +-- NotADatabaseFileError    SQLite: the URL's file is not a database
     |    +-- DatabaseNotFoundError      the server has no database of the URL's name
     +-- ProvisionError              a test database could not be made ready
     |    +-- DatabaseCreationError      creating it (empty, or a clone or copy of
     |    |                              a template) failed, or it already exists
     |    +-- DatabaseDropError          dropping it failed
     |    +-- LeaseError                 the lock that leases it to a run, or guards
     |                                   its template's build, cannot be taken
     +-- UnsafeDatabaseError         refused: not provably a test database
     +-- SchemaChangedError          a table was created or dropped by a test
     |                               (or while dbrewind installed tracking)
     +-- NotPreparedError            rewind/check called before prepare()
     +-- LockTimeoutError            a rewind waited too long for a lock that
     |                               another session holds (a leaked transaction)
     +-- SandboxError                the rollback sandbox cannot hold
     |    +-- SandboxBrokenError         the outer transaction was ended
     |                                   (e.g. an implicit commit on MySQL)
     +-- LeakError                   a test wrote outside its sandbox, or left
     |                               threads or connections behind (strict mode)
     +-- VerificationError           the database differs from its baseline
     |                               after the rewind (``--dbrewind-verify``)
     +-- DataLoadError               a test-data file is missing, malformed or
                                     does not match the database

Warnings derive from :class:`DbrewindWarning`::

    DbrewindWarning
     +-- DbrewindLeakWarning         a test committed writes outside its sandbox
     +-- FixtureShadowedWarning      a project fixture has the name of one of dbrewind's
     +-- SafetyNetWarning            a database runs without tracking (not a test
                                     database, or another run holds it)
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionFailedError",
    "DataLoadError",
    "DatabaseCreationError",
    "DatabaseDropError",
    "DatabaseNotFoundError",
    "DbrewindError",
    "DbrewindLeakWarning",
    "DbrewindWarning",
    "DriverNotInstalledError",
    "FixtureShadowedWarning",
    "LeakError",
    "LeaseError",
    "LockTimeoutError",
    "NotADatabaseFileError",
    "NotPreparedError",
    "ProvisionError",
    "SafetyNetWarning",
    "SandboxBrokenError",
    "SandboxError",
    "SchemaChangedError",
    "ServerUnreachableError",
    "SetupError",
    "UnsafeDatabaseError",
    "VerificationError",
    "WrongServerError",
]


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what caused it (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class DbrewindError(Exception):
    """Base class of every error dbrewind raises."""


class ConfigurationError(DbrewindError, ValueError):
    """A URL, option or setting is malformed or inconsistent."""


class DriverNotInstalledError(ConfigurationError, ImportError):
    """The database driver a URL needs is not importable."""


class SetupError(ConfigurationError):
    """The schema setup ran but did not build the test database: an Alembic ``env.py``
    that migrates the database of its own settings, or a setup that made no tables."""


class ConnectionFailedError(DbrewindError):
    """Connecting to a database failed; the driver's own error is the ``__cause__``.

    The message names the URL (password hidden), what the driver said and what
    to check. Catch a subclass for one kind of failure, this class for any.
    """

    advice = "Check the URL's host, port, user and password, and that the server runs."


class ServerUnreachableError(ConnectionFailedError):
    """Nothing answers at the URL's host and port: refused, unknown host, or no answer in time."""

    advice = (
        "Check that the server runs and that the URL's host and port are right "
        "(and reachable from here: a firewall, a container's port mapping)."
    )


class AuthenticationError(ConnectionFailedError):
    """The server refused the URL's user or password (or the user does not exist there)."""

    advice = (
        "Check the user name and password in the URL, and that this user exists on the "
        "server and may connect from this host."
    )


class WrongServerError(ConnectionFailedError):
    """Something answers at the URL's port, but it is not a server of the URL's kind."""

    advice = "Check the URL's port and scheme: another kind of server (or a proxy) listens there."


class NotADatabaseFileError(WrongServerError):
    """SQLite: the file the URL names exists, and is not a SQLite database."""

    advice = (
        "Check the URL's path: it names a file of another kind (or a damaged or "
        "encrypted database). dbrewind leaves the file as it is."
    )


class DatabaseNotFoundError(ConnectionFailedError):
    """The server answered, and has no database of the URL's name."""

    advice = (
        "Create it, or let dbrewind create it: the pytest plugin does on its first run, "
        "and so do Rewinder.prepare() and Rewinder.create()."
    )


class ProvisionError(DbrewindError):
    """A test database could not be made ready: created, copied, dropped or leased.

    Catch a subclass for one kind of failure, this class for any. A server that
    cannot be reached at all raises a :class:`ConnectionFailedError` instead.
    """


class DatabaseCreationError(ProvisionError):
    """Creating a database failed: an empty one, or a clone or copy of a template.

    Also raised when a database of that name already exists. The message names
    the database and what the server said; a partial database is dropped.
    """


class DatabaseDropError(ProvisionError):
    """Dropping a database failed (its role may not, or sessions keep it in use)."""


class LeaseError(ProvisionError):
    """dbrewind could not take the lock that leases a database to this run or guards
    its template's build: the server refused it, the lock file cannot be written,
    another run held it too long, or every clone is leased to other runs."""


class UnsafeDatabaseError(DbrewindError):
    """dbrewind refused to write to a database it cannot show is a test database."""


class SchemaChangedError(DbrewindError):
    """A table was created or dropped (by a test, or while dbrewind installed tracking);
    the baseline no longer describes the database."""


class NotPreparedError(DbrewindError):
    """An operation needs ``prepare()`` (tracking and baseline) to have run first."""


class LockTimeoutError(DbrewindError):
    """A rewind gave up waiting for a lock held by another session (``Rewinder(lock_timeout=..)``).

    Usually a connection a test left open inside a transaction; the message
    lists the database's other sessions that have a transaction open.
    """


class SandboxError(DbrewindError):
    """The rollback sandbox could not be set up or kept."""


class SandboxBrokenError(SandboxError):
    """The sandbox's outer transaction ended during the test (an implicit commit)."""


class LeakError(DbrewindError):
    """A test wrote outside its sandbox (or left threads or connections behind), and
    strict mode (``--dbrewind-strict``, ``@pytest.mark.dbrewind(strict=True)``) turns
    that into a failure; the pytest plugin fails the test with the message."""


class VerificationError(DbrewindError, AssertionError):
    """After a test and its rewind, a table's contents differ from the baseline
    (``--dbrewind-verify``); the message names the tables and rows."""


class DataLoadError(DbrewindError):
    """A test-data file (``.sql``, ``.json``, ``.yaml``, ``.csv``) could not be loaded.

    The message names the file, and the record (row and line), table or column at fault.
    """


class DbrewindWarning(UserWarning):
    """Base class of every warning dbrewind gives."""


class DbrewindLeakWarning(DbrewindWarning):
    """A test committed writes outside its sandbox; dbrewind rewound them."""


class FixtureShadowedWarning(DbrewindWarning):
    """A project's fixture has the name of one of dbrewind's (``db``, ``db_session``...):
    tests asking for that name get the project's; ``dbrewind_<name>`` reaches dbrewind's."""


class SafetyNetWarning(DbrewindWarning):
    """A database is used without dbrewind's tracking: escaped writes are not cleaned there.

    Given once per database: it is not provably a test database (rollback
    sandboxes still run on it, writing nothing lasting), or another live run
    holds it. The message says how to turn the safety net on.
    """
