"""Private database servers a test may stop and restart: PostgreSQL and MariaDB.

The shared servers other tests run on are never stopped or restarted. A test
about a restarted server gets one of its own instead, from the session-scoped
:func:`private_servers` fixture: a PostgreSQL cluster (``initdb``/``pg_ctl``)
or a MariaDB data directory (``mariadb-install-db``/``mariadbd``) in a
temporary directory, listening on 127.0.0.1 on a free port. Each is made on
first use, with durability off (``fsync=off``, ``--no-sync``) so that start-up
stays cheap, and removed at the end of the session: nothing is left running.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from conftest import IN_CI

__all__ = ["PrivateServer", "private_servers"]

START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}; under CI every backend must run, none may be skipped.")
    pytest.skip(message)


class PrivateServer:
    """One private server: :meth:`start`, :meth:`restart`, :meth:`stop`; :attr:`url`."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"dbrewind-{backend}-"))
        self.data = self.root / "data"
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._runas: list[str] = []
        self._bindir = Path()
        # whose it is: a later session removes it if this process was killed first
        (self.root / "owner").write_text(str(os.getpid()))

    @property
    def url(self) -> URL:
        """The server's URL (its maintenance database), sync driver."""
        if self.backend == "postgresql":
            return make_url(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres")
        return make_url(f"mysql+pymysql://root@127.0.0.1:{self.port}/")

    def __repr__(self) -> str:
        return f"PrivateServer({self.backend!r}, port {self.port})"

    # ---------------------------------------------------------------- control
    def create(self) -> None:
        """Make the data directory and start the server."""
        if self.backend == "postgresql":
            self._create_postgresql()
        else:
            self._create_mariadb()
        self.start()

    def start(self) -> None:
        if self.backend == "postgresql":
            self._pg_ctl("start", "-o", self._pg_options(), "-l", str(self.root / "log"))
        else:
            log = open(self.root / "log", "ab")  # noqa: SIM115 - the server holds it
            self._proc = subprocess.Popen(
                self._mariadbd(), stdout=log, stderr=log, preexec_fn=_die_with_parent
            )
            log.close()
        self._wait_ready()

    def stop(self) -> None:
        if self.backend == "postgresql":
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "fast")
            return
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> None:
        """Stop the server (every session ends) and start it again on the same port."""
        self.stop()
        self.start()
        self.restarts += 1

    def remove(self) -> None:
        """Stop it and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------- PostgreSQL
    def _create_postgresql(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = found[-1] if found else shutil.which("initdb")
        if initdb is None:
            _unavailable("no PostgreSQL initdb on this machine for a private server")
        assert initdb is not None
        self._bindir = Path(initdb).parent
        if os.geteuid() == 0:  # root cannot run initdb: the postgres user does
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._runas = ["runuser", "-u", "postgres", "--"]
        self._run(
            [initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
             "-E", "UTF8", "--no-instructions"]
        )  # fmt: skip

    def _pg_options(self) -> str:
        return (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB "
            "-c max_connections=40"
        )

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(self._bindir / "pg_ctl"), "-D", str(self.data), "-w", *args])

    # ---------------------------------------------------------------- MariaDB
    def _create_mariadb(self) -> None:
        install = shutil.which("mariadb-install-db")
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if install is None or not os.path.exists(binary):
            _unavailable("no mariadb-install-db / mariadbd on this machine for a private server")
        assert install is not None
        self._run(
            [install, "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"]
        )  # fmt: skip

    def _mariadbd(self) -> list[str]:
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        return [
            binary, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
            f"--socket={self.root / 'mysqld.sock'}", f"--pid-file={self.root / 'mysqld.pid'}",
            "--bind-address=127.0.0.1", "--user=root", "--skip-log-bin",
            "--innodb-buffer-pool-size=16M", "--innodb-flush-log-at-trx-commit=0",
            "--max-connections=40",
        ]  # fmt: skip

    # ----------------------------------------------------------------- common
    def _run(self, command: list[str]) -> None:
        done = subprocess.run(
            [*self._runas, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    def _wait_ready(self) -> None:
        """Until a connection gets an answer (pg_ctl -w waits already; mariadbd does not)."""
        deadline = time.monotonic() + START_TIMEOUT
        engine = create_engine(self.url)
        try:
            while True:
                try:
                    with engine.connect() as conn:
                        conn.execute(text("SELECT 1"))
                    return
                except Exception:
                    if self._proc is not None and self._proc.poll() is not None:
                        log = (self.root / "log").read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"{self!r} exited on start:\n{log}") from None
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            engine.dispose()


def _die_with_parent() -> None:
    """In the server's process: end with a SIGTERM when the test process dies (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale() -> list[Path]:
    """Stop and remove the private servers of sessions that were killed before their end
    (their owner process is gone); returns the directories removed."""
    removed = []
    for root in Path(tempfile.gettempdir()).glob("dbrewind-*-*"):
        owner = root / "owner"
        if root.name.split("-")[1] not in ("postgresql", "mysql") or not owner.exists():
            continue
        with contextlib.suppress(ValueError, OSError):
            if _alive(int(owner.read_text())):
                continue
        for pidfile in (root / "data" / "postmaster.pid", root / "mysqld.pid"):
            with contextlib.suppress(ValueError, OSError, IndexError):
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, signal.SIGQUIT if pidfile.name == "postmaster.pid" else signal.SIGKILL)
                for _ in range(200):
                    if not _alive(pid):
                        break
                    time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


@pytest.fixture(scope="session")
def private_servers() -> Iterator[dict[str, PrivateServer]]:
    """Private servers by backend, made on first use (``get_private_server``), all
    removed at the end of the session (and those of an earlier, killed session at its
    start)."""
    reap_stale()
    servers: dict[str, PrivateServer] = {}
    yield servers
    for server in servers.values():
        with contextlib.suppress(Exception):
            server.remove()


def get_private_server(servers: dict[str, PrivateServer], backend: str) -> PrivateServer:
    """The session's private server for ``backend``, started now if it is not yet."""
    if backend not in servers:
        server = PrivateServer(backend)
        try:
            server.create()
        except BaseException:
            server.remove()
            raise
        servers[backend] = server
    return servers[backend]
