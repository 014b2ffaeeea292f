"""Databases as files: the file behind a URL, creating, copying and removing it, and the
``flock`` lock files beside it (see the package docstring for where they live)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sqlite3
import sys
import tempfile
import time
from contextlib import closing, suppress

from ..._url import DatabaseURL
from ...exceptions import ConfigurationError, DatabaseCreationError, LeaseError
from ..base import Lock
from ._sql import _MARK_CREATED

if sys.platform != "win32":
    import fcntl

__all__ = [
    "_FileLock",
    "_PrivateLock",
    "_acquire_lock",
    "_create_database",
    "_drop_database",
    "_file_path",
    "_list_databases",
    "_lock_holder",
]

_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
_LOCK_FILE = re.compile(r"-dbrewind-\w+\.lock\Z")
_LOCK_POLL = 0.05
"""Seconds between two tries of a lock another process holds."""
_SQLITE_HEADER = b"SQLite format 3\x00"


# ------------------------------------------------------------------ databases
def _file_path(url: DatabaseURL) -> str:
    """The file behind a file URL (``file:`` URIs with ``?uri=true`` included)."""
    name = url.database
    if name.startswith("file:"):
        name = name[len("file:") :].split("?", 1)[0]
    return name


def _connect(url: DatabaseURL) -> sqlite3.Connection:
    uri = str(url.url.query.get("uri", "")).lower() in {"1", "true"}
    return sqlite3.connect(url.database, uri=uri, isolation_level=None)


def _check_clone(url: DatabaseURL, template: DatabaseURL) -> None:
    if template.backend != "sqlite":
        raise ConfigurationError(
            f"Cannot create the SQLite database {url.display()} from the {template.backend} "
            f"database {template.display()}: a template must be an SQLite file."
        )
    for which, candidate in (("template", template), ("target", url)):
        if candidate.is_memory:
            raise ConfigurationError(
                f"Cannot copy {template.display()} to {url.display()}: the {which} is an "
                "in-memory database, which cannot be cloned. Use SQLite files for both."
            )
    if not os.path.isfile(_file_path(template)):
        raise ConfigurationError(
            f"Cannot create {url.display()} from template {template.display()}: the template "
            "file does not exist. Prepare the template first."
        )


def _mark_created(dbapi: sqlite3.Connection) -> None:
    """Write the creation mark through a plain ``sqlite3`` connection in autocommit mode."""
    for statement in _MARK_CREATED:
        dbapi.execute(statement)


def _remove_files(path: str) -> None:
    for candidate in (path, *(path + suffix for suffix in _COMPANION_SUFFIXES)):
        with suppress(FileNotFoundError):
            os.remove(candidate)


def _is_sqlite_file(path: str) -> bool:
    """A regular file that is empty or starts with SQLite's header."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(_SQLITE_HEADER))
    except OSError:  # a directory, unreadable, or gone meanwhile
        return False
    return head in (b"", _SQLITE_HEADER)


def _sibling_database(url: DatabaseURL, path: str) -> str:
    """``path`` written as ``url.database`` names its file (``file:`` URIs stay URIs)."""
    return f"file:{path}" if url.database.startswith("file:") else path


def _create_database(url: DatabaseURL, template: DatabaseURL | None) -> None:
    """:meth:`SQLiteDialect.create_database`: the file, or a backup of ``template``'s."""
    if template is not None:
        _check_clone(url, template)
    if url.is_memory:
        return
    path = _file_path(url)
    if os.path.exists(path):
        raise DatabaseCreationError(
            f"Cannot create {url.display()}: the file {path!r} already exists. "
            "Drop it first (Rewinder.drop() or prepare(recreate=True)), or use it as it is."
        )
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    try:
        with closing(_connect(url)) as target:
            if template is not None:
                with closing(_connect(template)) as source:
                    source.backup(target)
            _mark_created(target)
    except sqlite3.Error as exc:
        _remove_files(path)
        source_text = f" from {template.display()}" if template is not None else ""
        raise DatabaseCreationError(
            f"Could not create {url.display()}{source_text}: {exc}. Check that the "
            "directory is writable and the template is a readable SQLite database."
        ) from exc


def _drop_database(url: DatabaseURL) -> None:
    """:meth:`SQLiteDialect.drop_database`: the file and its companions, not its locks."""
    if url.is_memory:
        raise ConfigurationError(
            f"Cannot drop the in-memory database {url.display()}: it disappears when its "
            "last connection closes. Close the engine (Rewinder.close()) instead."
        )
    _remove_files(_file_path(url))


def _list_databases(url: DatabaseURL, prefix: str) -> list[str]:
    """:meth:`SQLiteDialect.list_databases`: the SQLite files beside ``url``'s."""
    if url.is_memory:
        return []
    directory = os.path.dirname(_file_path(url))
    try:
        names = os.listdir(directory or os.curdir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        if not name.startswith(prefix) or name.endswith(_COMPANION_SUFFIXES):
            continue
        if _LOCK_FILE.search(name):
            continue
        path = os.path.join(directory, name)
        if _is_sqlite_file(path):
            found.append(_sibling_database(url, path))
    return sorted(found)


# ------------------------------------------------------------------------ locks
class _FileLock(Lock):
    """An exclusive ``flock`` held on an open lock file until :meth:`release`."""

    def __init__(self, path: str, fd: int) -> None:
        self.name = path
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with suppress(OSError):
                os.ftruncate(fd, 0)  # nobody's name in it while nobody holds it
            fcntl.flock(fd, fcntl.LOCK_UN)  # a forked child may share the open file
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        state = "released" if self._fd is None else "held"
        return f"<SQLite lock {self.name!r}, {state}>"


class _PrivateLock(Lock):
    """The lock of an in-memory database: nobody else can reach it, so it is always held."""

    def __init__(self, name: str) -> None:
        self.name = name

    def release(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"<SQLite lock {self.name!r}>"


def _lock_paths(url: DatabaseURL, purpose: str) -> tuple[str, str]:
    """(the lock file beside the database file, the one in the temporary directory)."""
    real = os.path.realpath(_file_path(url))
    tag = re.sub(r"\W", "_", purpose, flags=re.ASCII)[:40]
    if tag != purpose:  # keep purposes that differ only in odd characters apart
        tag += "_" + hashlib.sha1(purpose.encode()).hexdigest()[:10]
    digest = hashlib.sha256(f"{real}\0{purpose}".encode()).hexdigest()[:32]
    fallback = os.path.join(tempfile.gettempdir(), "dbrewind-locks", f"{digest}.lock")
    return f"{real}-dbrewind-{tag}.lock", fallback


def _no_flock(url: DatabaseURL, purpose: str) -> ConfigurationError:
    return ConfigurationError(
        f"Cannot use the {purpose!r} lock of {url.display()}: SQLite's locks are flock locks "
        "on files, which Windows lacks. Run dbrewind's lifecycle on Linux or macOS."
    )


def _open_lock_file(url: DatabaseURL, purpose: str) -> tuple[str, int]:
    """Open (creating) the lock file: beside the database, else in the temporary directory."""
    beside, fallback = _lock_paths(url, purpose)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    with suppress(OSError):  # as create_database would; a failure shows in os.open
        os.makedirs(os.path.dirname(beside), exist_ok=True)
    try:
        return beside, os.open(beside, flags, 0o666)
    except OSError as exc:
        first = exc
    try:
        os.makedirs(os.path.dirname(fallback), exist_ok=True)
        return fallback, os.open(fallback, flags, 0o666)
    except OSError as exc:
        raise LeaseError(
            f"Cannot create the {purpose!r} lock file of {url.display()}: neither {beside!r} "
            f"({first.strerror or first}) nor {fallback!r} ({exc.strerror or exc}) can be "
            "written. Make the database's directory writable, or point TMPDIR at a "
            "writable directory."
        ) from exc


def _acquire_lock(url: DatabaseURL, purpose: str, wait: float) -> Lock | None:
    """:meth:`SQLiteDialect.acquire_lock`: ``flock`` the lock file, trying until ``wait``."""
    if url.is_memory:
        return _PrivateLock(f"{purpose} lock of {url.display()} (private to this process)")
    if sys.platform == "win32":
        raise _no_flock(url, purpose)
    path, fd = _open_lock_file(url, purpose)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.close(fd)
                    return None
                time.sleep(min(_LOCK_POLL, remaining))
    except OSError as exc:
        os.close(fd)
        raise LeaseError(
            f"Cannot take the {purpose!r} lock of {url.display()} on {path!r}: "
            f"{exc.strerror or exc}. File locks need a local file system that supports "
            "flock; keep the database (or TMPDIR) on one."
        ) from exc
    except BaseException:
        os.close(fd)
        raise
    with suppress(OSError):  # who holds it is a courtesy for messages
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}".encode(), 0)
    return _FileLock(path, fd)


def _lock_holder(url: DatabaseURL, purpose: str) -> str | None:
    """:meth:`SQLiteDialect.lock_holder`: who holds the ``flock``, from its file."""
    if url.is_memory:
        return None
    if sys.platform == "win32":
        raise _no_flock(url, purpose)
    for path in _lock_paths(url, purpose):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                who = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
                return f"dbrewind {who or '(name not written yet)'}, lock file {path}"
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return None
