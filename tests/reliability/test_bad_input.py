"""Bad input: malformed and hostile URLs, missing drivers, wrong credentials, foreign servers.

Every URL tried carries the password ``s3cr3t-Pa55``. Each case goes through
the library (``parse_url``, ``Rewinder``, ``Rewinder.prepare``, ``Sandbox``)
and through the pytest plugin from outside (a whole inner pytest run, the URL
given as ``--dbrewind-url``, ``DBREWIND_URL`` or ini ``dbrewind_url``), and
through the ``dbrewind`` command where it takes a URL. Each must give one clear
error of a type a user can catch, naming the URL (password hidden) and the
fix, with a non-zero exit status and no internal traceback; and the password
must appear nowhere: not in the error's text or its chained causes as pytest
prints them, not in ``repr`` of dbrewind's objects, log records, warnings, the
inner run's whole output or the command's output.

In the plugin, a URL that cannot work as written (malformed, unknown scheme,
unknown or missing driver, no database) stops the run at configure time with
one ``ERROR: dbrewind: ...`` line (exit status 4); a server that cannot be
reached or refuses the credentials shows as a one-line error at each test
that needs the database (exit status 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from conftest import SERVER_URLS
from dbrewind import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DatabaseNotFoundError,
    DbrewindError,
    DriverNotInstalledError,
    NotADatabaseFileError,
    Rewinder,
    ServerUnreachableError,
    WrongServerError,
    parse_url,
)
from dbrewind.cli import main
from dbrewind.dialects.base import CONNECT_TIMEOUT
from dbrewind.provision import make_engine
from dbrewind.sandbox import Sandbox
from helpers.runs import databases_named

RecordProperty = Callable[[str, object], None]

PASSWORD = "s3cr3t-Pa55"
SPECIAL_PASSWORD = "s3cr3t@Pa:55%x"
"""A password with the characters a URL gives meaning to."""
SECRETS = (PASSWORD, SPECIAL_PASSWORD, quote(SPECIAL_PASSWORD, safe=""))

SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}
OTHER_PORT = {"postgresql": "mysql", "mysql": "postgresql"}
WAIT = 2
"""Seconds a URL in these tests lets its driver wait for an answer."""

INNER_TEST = "def test_uses_the_database(db):\n    pass\n"
UNUSED_PLUGINS = [
    arg
    for name in ("randomly", "hypothesispytest", "xdist", "timeout")
    for arg in ("-p", f"no:{name}")
]
"""Plugins the inner runs do without (each costs start-up time)."""


# ------------------------------------------------------------------ helpers


def server(backend: str) -> URL:
    return make_url(SERVER_URLS[backend])


def url_on(
    backend: str,
    *,
    host: str | None = None,
    port: int | None = None,
    username: str | None = None,
    password: str | None = PASSWORD,
    database: str | None = None,
    query: dict[str, str] | None = None,
) -> str:
    """A URL on ``backend``'s server (or ``host``/``port``), with the test password."""
    base = server(backend)
    url = base.set(
        host=host or base.host,
        port=port or base.port,
        username=username or base.username,
        password=password,
        database=database or f"dbrw_{uuid.uuid4().hex[:8]}_test",
    )
    if password is None:
        url = url._replace(password=None)
    return url.update_query_dict(query or {}).render_as_string(hide_password=False)


def timeouts(backend: str, seconds: int = WAIT) -> dict[str, dict[str, str]]:
    """Query parameters that bound the driver's wait for a server's answer (PostgreSQL:
    one attempt, not a second one without SSL after the first timed out)."""
    if backend == "postgresql":
        return {"query": {"connect_timeout": str(seconds), "sslmode": "disable"}}
    return {"query": {"connect_timeout": str(seconds), "read_timeout": str(seconds)}}


def hidden(url: str) -> str:
    """What a message shows of ``url``: dbrewind's display (password hidden)."""
    return parse_url(url).display()


def secrets_in(said: str) -> list[str]:
    return [secret for secret in SECRETS if secret in said]


def as_pytest_prints(error: BaseException) -> str:
    """The error with its chained causes and contexts, as a traceback prints them."""
    return "".join(traceback.format_exception(error))


@dataclass
class Said:
    """What a failing call raised, warned and logged."""

    error: BaseException
    warnings: list[str]
    logs: str

    @property
    def everything(self) -> str:
        return "\n".join(
            [as_pytest_prints(self.error), repr(self.error), *self.warnings, self.logs]
        )


def failing(
    call: Callable[[], object], kind: type[BaseException], caplog: pytest.LogCaptureFixture
) -> Said:
    """Run ``call``, which must raise ``kind``; what it raised, warned and logged."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(kind) as info:
            call()
    return Said(info.value, [str(w.message) for w in caught], caplog.text)


def assert_clear(said: Said, *, names: str, fix: str) -> str:
    """One line naming ``names`` and the ``fix``; no secret anywhere; its text."""
    message = str(said.error)
    assert isinstance(said.error, DbrewindError), as_pytest_prints(said.error)
    assert len(message.splitlines()) == 1, message
    assert names in message, message
    assert fix in message, message
    assert not secrets_in(said.everything), said.everything
    return message


def connect_fails(
    url: str, kind: type[ConnectionFailedError], caplog: pytest.LogCaptureFixture
) -> str:
    """``Rewinder(url).prepare()``, ``Rewinder(url).rewind()`` and a ``Sandbox`` on
    ``url`` each raise ``kind``, keeping the driver's error as the cause."""
    names = hidden(url)
    messages = []
    for call in (
        lambda: Rewinder(url).prepare(),
        lambda: Rewinder(url).rewind(),
        lambda: Sandbox(create_engine(url)).start(),
    ):
        said = failing(call, kind, caplog)
        assert said.error.__cause__ is not None
        assert not isinstance(said.error.__cause__, DbrewindError)
        server_part = names.rsplit("/", 1)[0]
        messages.append(assert_clear(said, names=server_part, fix=kind.advice))
        assert repr(Rewinder(url)) == f"Rewinder({names!r})"
    return messages[0]


@dataclass
class InnerRun:
    ret: int
    output: str


def plugin_run(
    pytester: pytest.Pytester,
    url: str,
    how: str = "option",
    *,
    plugins: tuple[str, ...] = (),
    subprocess: bool = False,
    timeout: float = 120,
) -> InnerRun:
    """A whole inner pytest run of one test asking for ``db``, configured with ``url``.

    In this process (cheap), unless ``plugins`` are given (they hide modules from
    the whole interpreter) or ``subprocess``: a run that gets a database (this
    session's plugin would count it as its own).
    """
    pytester.makepyfile(test_inner=INNER_TEST)
    args = ["-p", "no:cacheprovider", "-rA", *UNUSED_PLUGINS]
    for plugin in plugins:
        args += ["-p", plugin]
    ini = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    env: dict[str, str | None] = {"DBREWIND_URL": None, "PYTEST_ADDOPTS": None}
    if how == "option":
        args.append(f"--dbrewind-url={url}")
    elif how == "env":
        env["DBREWIND_URL"] = url
    elif how == "ini":
        ini += f"dbrewind_url = {url}\n"
    else:  # pragma: no cover - a typo in a test
        raise AssertionError(how)
    pytester.makeini(ini)
    saved = {key: os.environ.get(key) for key in env}
    try:
        _set_environment(env)
        if plugins or subprocess:
            result = pytester.runpytest_subprocess(*args, timeout=timeout)
        else:
            result = pytester.runpytest_inprocess(*args)
    finally:
        _set_environment(saved)
    return InnerRun(int(result.ret), result.stdout.str() + "\n" + result.stderr.str())


def _set_environment(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def assert_usage_error(run: InnerRun, *, names: str, fix: str) -> str:
    """The run stopped at configure time with one ``ERROR: dbrewind:`` line."""
    lines = [line for line in run.output.splitlines() if line.startswith("ERROR: dbrewind: ")]
    assert run.ret == pytest.ExitCode.USAGE_ERROR, run.output
    assert len(lines) == 1, run.output
    assert names in lines[0], run.output
    assert fix in lines[0], run.output
    assert "Traceback" not in run.output, run.output
    assert not secrets_in(run.output), run.output
    return lines[0].removeprefix("ERROR: dbrewind: ")


def assert_test_error(run: InnerRun, *, names: str, fix: str) -> str:
    """The test needing the database errored with a one-line dbrewind error, no traceback."""
    section = run.output.partition(" ERRORS ")[2].partition(" short test summary info ")[0]
    errors = [line for line in section.splitlines() if line.startswith("dbrewind: ")]
    assert run.ret == pytest.ExitCode.TESTS_FAILED, run.output
    assert "1 error" in run.output, run.output
    assert errors, run.output
    assert all(line == errors[0] for line in errors), run.output
    assert names in errors[0], run.output
    assert fix in errors[0], run.output
    for noise in ("Traceback", "During handling", "direct cause", "site-packages"):
        assert noise not in run.output, run.output
    assert not secrets_in(run.output), run.output
    return errors[0]


def cli(*args: str) -> InnerRun:
    """``dbrewind <args>``: its exit status and everything it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(list(args), out=out)
    return InnerRun(status, out.getvalue() + err.getvalue())


def assert_cli_error(url: str, *, names: str, commands: tuple[str, ...] = ("doctor",)) -> None:
    """``dbrewind doctor|bench|uninstall <url>``: status 2, one error line, no secret."""
    for command in commands:
        run = cli(command, url)
        errors = [line for line in run.output.splitlines() if "error" in line.lower()]
        assert run.ret == 2, run.output
        assert len(errors) == 1, run.output
        assert errors[0].startswith("dbrewind: error: "), run.output
        assert names in errors[0], run.output
        assert "Traceback" not in run.output, run.output
        assert not secrets_in(run.output), run.output


# ------------------------------------------------------------- local servers


@contextlib.contextmanager
def local_server(reply: bytes | None) -> Iterator[int]:
    """A TCP server on a free local port: it sends ``reply`` and hangs up, or (None)
    takes the connection and never says anything. Yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if reply is None:
                held.append(conn)  # silent: kept open until the end
                continue
            with conn, contextlib.suppress(OSError):
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()
        thread.join(timeout=5)


HTTP_REPLY = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------- URLs that cannot work


def test_an_empty_or_blank_url(
    pytester: pytest.Pytester, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """an empty or blank URL ('', spaces, a tab; an empty --dbrewind-url=)"""
    for blank in ("", "   ", "\t\n"):
        for call in (lambda b=blank: parse_url(b), lambda b=blank: Rewinder(b)):
            said = failing(call, ConfigurationError, caplog)
            assert_clear(said, names="database URL is empty", fix="Give one such as")
    run = plugin_run(pytester, "  ")
    line = assert_usage_error(run, names="--dbrewind-url was given an empty URL", fix="Give one")
    record_property("result", f"ConfigurationError; the plugin: usage error: {line}")


def test_text_that_is_not_a_url(
    pytester: pytest.Pytester, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """garbage, a URL without '//', a port that is not a number, a password and no host"""
    cases = {
        "garbage": "garbage",
        f"postgres:{PASSWORD}@localhost/app_test": "postgres...",
        f"postgresql://u:{PASSWORD}@127.0.0.1:port/app_test": "postgresql://u:***@127.0.0.1:***/",
        f"postgresql://u:{PASSWORD}": "postgresql://u:***",
        f"mysql://root:{PASSWORD}@[::1/app_test": "mysql://root:***@",
    }
    for url, shown in cases.items():
        for call in (lambda u=url: parse_url(u), lambda u=url: Rewinder(u)):
            said = failing(call, ConfigurationError, caplog)
            message = assert_clear(said, names=shown, fix="Expected the form")
    for how, url in zip(("option", "env", "ini"), cases, strict=False):
        assert_usage_error(
            plugin_run(pytester, url, how), names=cases[url], fix="Expected the form"
        )
    assert_cli_error(f"postgresql://u:{PASSWORD}@127.0.0.1:port/app_test", names="***")
    record_property("result", f"ConfigurationError: {message}")


def test_an_unknown_scheme(
    pytester: pytest.Pytester, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """an unknown scheme (oracle://, mongodb://, mssql+pyodbc://)"""
    for url in (
        f"oracle://scott:{PASSWORD}@db/app_test",
        f"mongodb://u:{PASSWORD}@db/app_test",
        f"mssql+pyodbc://u:{PASSWORD}@db/app_test?password={PASSWORD}",
    ):
        shown = hidden_unchecked(url).split("?")[0]
        said = failing(lambda u=url: Rewinder(u), ConfigurationError, caplog)
        message = assert_clear(said, names=shown, fix="dbrewind supports sqlite, postgresql")
    run = plugin_run(pytester, f"mongodb://u:{PASSWORD}@db/app_test", "env")
    assert_usage_error(run, names="mongodb://u:***@db/app_test", fix="dbrewind supports")
    assert_cli_error(f"oracle://scott:{PASSWORD}@db/app_test", names="oracle://scott:***@db")
    record_property("result", f"ConfigurationError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_url_that_names_no_database(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a server URL that names no database (postgresql://host, mysql://host/)"""
    url = server(backend).set(password=PASSWORD)._replace(database=None).render_as_string(False)
    names = parse_url(f"{url.rstrip('/')}/x").display().rsplit("/", 1)[0]
    for call in (lambda: parse_url(url), lambda: Rewinder(url)):
        message = assert_clear(
            failing(call, ConfigurationError, caplog), names=names, fix="Add one after the host"
        )
    bare = f"{SCHEMES[backend]}://"
    failing(lambda: parse_url(bare), ConfigurationError, caplog)
    assert_usage_error(plugin_run(pytester, url, "ini"), names=names, fix="Add one after the host")
    record_property("result", f"ConfigurationError: {message}")


def test_an_unknown_driver(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """an unknown driver (postgresql+nosuch://, mysql+nosuch://, sqlite+nosuch://)"""
    if backend == "sqlite":
        url = "sqlite+nosuch:///dbrw_app_test.db"
    else:
        url = f"{SCHEMES[backend]}+nosuch://{url_on(backend).split('://', 1)[1]}"
    names = hidden_unchecked(url)
    for call in (lambda: parse_url(url), lambda: Rewinder(url)):
        message = assert_clear(
            failing(call, ConfigurationError, caplog), names=names, fix="Use one of"
        )
    assert_usage_error(plugin_run(pytester, url), names=names, fix="Use one of")
    record_property("result", f"ConfigurationError: {message}")


def hidden_unchecked(url: str) -> str:
    """The display of a URL parse_url refuses (SQLAlchemy's, password hidden)."""
    return make_url(url).render_as_string(hide_password=True)


MISSING = {
    "sqlite": ("aiosqlite", "sqlite+aiosqlite:///{path}"),
    "postgresql": ("asyncpg", "postgresql+asyncpg://"),
    "mysql": ("asyncmy", "mysql+asyncmy://"),
}


def test_a_driver_that_is_not_installed(
    backend: str,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a driver the URL names that is not installed (asyncpg, asyncmy, aiosqlite hidden)"""
    module, prefix = MISSING[backend]
    if backend == "sqlite":
        url = prefix.format(path=pytester.path / "dbrw_app_test.db")
    else:
        rest = url_on(backend).split("://", 1)[1]
        url = f"{prefix}{rest}"
    names = hidden_unchecked(url)
    fix = f"pip install 'dbrewind[{backend}]'"
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, module, None)  # import fails: as if not installed
        for call in (lambda: parse_url(url), lambda: Rewinder(url)):
            said = failing(call, DriverNotInstalledError, caplog)
            message = assert_clear(said, names=names, fix=fix)
    pytester.makepyfile(hide_driver=f"import sys\nsys.modules[{module!r}] = None\n")
    run = plugin_run(pytester, url, plugins=("hide_driver",))
    assert_usage_error(run, names=names, fix=fix)
    record_property("result", f"DriverNotInstalledError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_no_driver_installed_at_all_for_a_url_without_one(
    backend: str, pytester: pytest.Pytester, record_property: RecordProperty
) -> None:
    """a URL naming no driver when none of the backend's drivers is installed"""
    hide = {"postgresql": ("psycopg", "psycopg2"), "mysql": ("pymysql", "MySQLdb")}[backend]
    url = f"{SCHEMES[backend]}://{url_on(backend).split('://', 1)[1]}"
    lines = "".join(f"sys.modules[{name!r}] = None\n" for name in hide)
    pytester.makepyfile(hide_driver=f"import sys\n{lines}")
    run = plugin_run(pytester, url, plugins=("hide_driver",))
    line = assert_usage_error(run, names=hidden(url), fix=f"pip install 'dbrewind[{backend}]'")
    assert "none of" in line
    record_property("result", f"usage error: {line}")


# ---------------------------------------------------------- refused connects


@pytest.mark.backends("mysql")
def test_a_wrong_password(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """MariaDB's root user with a wrong password"""
    url = url_on(backend, username="root")
    message = connect_fails(url, AuthenticationError, caplog)
    run = plugin_run(pytester, url)
    assert_test_error(run, names=hidden(url).rsplit("/", 1)[0], fix=AuthenticationError.advice)
    assert_cli_error(url, names=hidden(url).rsplit("/", 1)[0])
    record_property("result", f"AuthenticationError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_user_that_does_not_exist(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a user that does not exist on the server"""
    url = url_on(backend, username=f"nobody_{uuid.uuid4().hex[:6]}")
    message = connect_fails(url, AuthenticationError, caplog)
    run = plugin_run(pytester, url, "env")
    assert_test_error(run, names=hidden(url).rsplit("/", 1)[0], fix=AuthenticationError.advice)
    record_property("result", f"AuthenticationError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_database_that_does_not_exist(
    backend: str, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """a database that does not exist, used without preparing it (rewind, Sandbox)"""
    url = url_on(backend, password=None)
    for call in (lambda: Rewinder(url).rewind(), lambda: Sandbox(create_engine(url)).start()):
        said = failing(call, DatabaseNotFoundError, caplog)
        message = assert_clear(said, names=hidden(url), fix=DatabaseNotFoundError.advice)
    record_property("result", f"DatabaseNotFoundError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_closed_port(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a closed local port (nothing listens there)"""
    url = url_on(backend, port=closed_port())
    message = connect_fails(url, ServerUnreachableError, caplog)
    run = plugin_run(pytester, url)
    assert_test_error(run, names=hidden(url).rsplit("/", 1)[0], fix=ServerUnreachableError.advice)
    assert_cli_error(
        url, names=hidden(url).rsplit("/", 1)[0], commands=("doctor", "bench", "uninstall")
    )
    record_property("result", f"ServerUnreachableError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_host_name_that_does_not_resolve(
    backend: str, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """a host name that does not resolve (no-such-host.invalid)"""
    url = url_on(backend, host="no-such-host.invalid", **timeouts(backend))
    message = connect_fails(url, ServerUnreachableError, caplog)
    record_property("result", f"ServerUnreachableError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_non_routable_address_with_a_short_connect_timeout(
    backend: str, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """a non-routable address (10.255.255.1) with a short connect timeout"""
    url = url_on(backend, host="10.255.255.1", **timeouts(backend, 1))
    started = time.monotonic()
    said = failing(lambda: Rewinder(url).prepare(), ConnectionFailedError, caplog)
    seconds = time.monotonic() - started
    # unreachable, or (behind a proxy that answers for every address) another server
    assert isinstance(said.error, ServerUnreachableError | WrongServerError)
    assert seconds < 20, seconds
    message = assert_clear(said, names=hidden(url).rsplit("/", 1)[0], fix=type(said.error).advice)
    record_property("result", f"{type(said.error).__name__} in {seconds:.1f} s: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_server_of_the_other_kind_on_the_port(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a PostgreSQL URL at MariaDB's port, and a MariaDB URL at PostgreSQL's"""
    other = server(OTHER_PORT[backend])
    url = url_on(backend, port=other.port, **timeouts(backend, 1))
    started = time.monotonic()
    message = connect_fails(url, WrongServerError, caplog)
    assert time.monotonic() - started < 60
    run = plugin_run(pytester, url)
    assert_test_error(run, names=hidden(url).rsplit("/", 1)[0], fix=WrongServerError.advice)
    record_property("result", f"WrongServerError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_port_that_answers_http(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a local port that answers with HTTP"""
    with local_server(HTTP_REPLY) as port:
        url = url_on(backend, port=port, **timeouts(backend))
        message = connect_fails(url, WrongServerError, caplog)
        run = plugin_run(pytester, url, "ini")
        assert_test_error(run, names=hidden(url).rsplit("/", 1)[0], fix=WrongServerError.advice)
    record_property("result", f"WrongServerError: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_port_that_accepts_and_never_answers(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a local port that takes the connection and never answers (with a timeout in the URL)"""
    with local_server(None) as port:
        url = url_on(backend, port=port, **timeouts(backend, 1))
        started = time.monotonic()
        said = failing(lambda: Rewinder(url).prepare(), ConnectionFailedError, caplog)
        seconds = time.monotonic() - started
        # libpq says only "timeout expired"; a MySQL client knows the port took it
        kind = ServerUnreachableError if backend == "postgresql" else WrongServerError
        assert type(said.error) is kind, said.error
        assert seconds < 20, seconds
        message = assert_clear(said, names=hidden(url).rsplit("/", 1)[0], fix=kind.advice)
        run = plugin_run(pytester, url)
        assert_test_error(run, names=hidden(url).rsplit("/", 1)[0], fix=kind.advice)
    record_property("result", f"{kind.__name__} in {seconds:.1f} s: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_server_of_the_other_kind_with_no_timeouts_in_the_url(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a URL at the other server's port with no timeouts of its own (a MySQL client at
    PostgreSQL's port: PostgreSQL waits for the client to speak first)"""
    url = url_on(backend, port=server(OTHER_PORT[backend]).port)
    started = time.monotonic()
    said = failing(lambda: Rewinder(url).prepare(), ConnectionFailedError, caplog)
    seconds = time.monotonic() - started
    assert seconds < CONNECT_TIMEOUT + 5, seconds
    message = assert_clear(said, names=hidden(url).rsplit("/", 1)[0], fix=said.error.advice)
    run = plugin_run(pytester, url, subprocess=True, timeout=CONNECT_TIMEOUT * 3 + 30)
    assert_test_error(run, names=hidden(url).rsplit("/", 1)[0], fix=said.error.advice)
    drivers = []
    for driver in ASYNC_DRIVERS[backend]:
        # each in a process of its own: after asyncpg met MariaDB's greeting, a later
        # asyncpg TLS connect in the same process crashed it (seen under pytest only)
        async_url = f"{SCHEMES[backend]}+{driver}://{url.split('://', 1)[1]}"
        started = time.monotonic()
        tried = subprocess.run(
            [sys.executable, "-c", ASYNC_CONNECT, async_url],
            capture_output=True,
            text=True,
            timeout=CONNECT_TIMEOUT * 3,
            check=False,
        )
        seconds = time.monotonic() - started
        assert tried.stdout.startswith("ConnectionFailedError "), tried.stdout + tried.stderr
        assert not secrets_in(tried.stdout + tried.stderr)
        drivers.append(f"{driver} {tried.stdout.split()[1]} in {seconds:.1f} s")
        assert seconds < CONNECT_TIMEOUT + 5, drivers
    record_property(
        "result",
        f"{type(said.error).__name__} in {seconds:.1f} s ({', '.join(drivers)}): {message}",
    )


@pytest.mark.backends("mysql")
def test_the_bounded_handshake_leaves_queries_unbounded(
    backend: str, monkeypatch: pytest.MonkeyPatch, record_property: RecordProperty
) -> None:
    """the handshake's time limit does not cut a query that runs longer than it"""
    import dbrewind.dialects.mysql.connect as mysql_dialect

    monkeypatch.setattr(mysql_dialect, "CONNECT_TIMEOUT", 0.5)
    engine = make_engine(parse_url(f"{SERVER_URLS[backend].rstrip('/')}/mysql"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT SLEEP(1.5)")).scalar() == 0
    finally:
        engine.dispose()
    record_property("result", "a 1.5 s query ran on a connection whose handshake had 0.5 s")


@pytest.mark.backends("sqlite")
def test_a_sqlite_file_that_is_not_a_database(
    backend: str,
    pytester: pytest.Pytester,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a SQLite URL naming a file that is not a database (a text file)"""
    path = tmp_path / "notes_test.db"
    path.write_bytes(b"These are notes, not a database.\n" * 20)
    before = path.read_bytes()
    url = f"sqlite:///{path}"
    fix = NotADatabaseFileError.advice
    messages = []
    for call in (lambda: Rewinder(url).prepare(), lambda: Rewinder(url).rewind()):
        said = failing(call, NotADatabaseFileError, caplog)
        assert isinstance(said.error, WrongServerError)
        messages.append(assert_clear(said, names=hidden(url), fix=fix))
    run = plugin_run(pytester, url)
    assert_test_error(run, names=hidden(url), fix=fix)
    assert path.read_bytes() == before
    record_property("result", f"NotADatabaseFileError, the file unchanged: {messages[0]}")


@pytest.mark.backends("postgresql")
def test_asyncpg_timeouts_in_the_url(
    backend: str, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """asyncpg's timeout and command_timeout in the URL (text, which asyncpg takes as
    numbers), and one that is not a number"""
    good = f"postgresql+asyncpg://{SERVER_URLS[backend].split('://', 1)[1]}"
    good += "?timeout=3&command_timeout=0.5"

    async def query(url: str) -> str:
        from dbrewind.provision import make_async_engine

        engine = make_async_engine(parse_url(url))
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(2)"))
        except Exception as exc:  # the command timeout cuts the 2 s sleep
            return type(getattr(exc, "orig", exc)).__name__
        finally:
            await engine.dispose()
        return "no timeout"

    assert "Timeout" in asyncio.run(query(good))
    bad = good.replace("timeout=3", "timeout=soon")
    said = failing(lambda: asyncio.run(async_connect(bad)), ConfigurationError, caplog)
    message = assert_clear(said, names="timeout='soon'", fix="timeout=10")
    record_property("result", f"seconds taken as numbers; ConfigurationError: {message}")


def what_the_driver_is_given(url: str) -> dict[str, object]:
    """The keyword arguments dbrewind's engine on ``url`` (sync or async, by its driver)
    hands the driver's connect function; the connect itself is stopped there."""
    from dbrewind.provision import make_async_engine

    parsed = parse_url(url)
    is_async = parsed.url.get_dialect().is_async
    async_engine = make_async_engine(parsed) if is_async else None
    engine = async_engine.sync_engine if async_engine is not None else make_engine(parsed)
    given: dict[str, object] = {}

    def capture(*_args: object, **cparams: object) -> None:
        given.update(cparams)
        raise ConnectionAbortedError("captured")

    engine.dialect.connect = capture  # type: ignore[method-assign]

    async def touch() -> None:
        assert async_engine is not None
        async with async_engine.connect():
            pass

    with contextlib.suppress(ConnectionAbortedError):
        if async_engine is not None:
            asyncio.run(touch())
        else:
            engine.connect()
    engine.dispose()
    return given


def test_dbrewinds_engines_bound_the_connect_unless_the_url_does(
    backend: str, tmp_path: Path, record_property: RecordProperty
) -> None:
    """every driver of dbrewind's engines, sync and async: a bounded connect wait by
    default, the URL's own value when it gives one"""
    drivers = {
        "sqlite": {"pysqlite": "timeout", "aiosqlite": "timeout"},
        "postgresql": {
            "psycopg": "connect_timeout",
            "psycopg_async": "connect_timeout",
            "asyncpg": "timeout",
        },
        "mysql": {"pymysql": "connect_timeout", "aiomysql": "connect_timeout"},
    }[backend]
    seen = []
    for driver, option in drivers.items():
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'dbrw_timeouts_test.db'}"
        else:
            url = url_on(backend, database="dbrw_timeouts_test")
        url = f"{SCHEMES[backend]}+{driver}://{url.split('://', 1)[1]}"
        default = what_the_driver_is_given(url).get(option)
        assert default is not None, (driver, option)
        assert 0 < float(str(default)) <= 30, (driver, default)
        given = what_the_driver_is_given(f"{url}?{option}=7").get(option)
        assert float(str(given)) == 7, (driver, given)
        seen.append(f"{driver} {option}={default}")
    record_property("result", ", ".join(seen))


ASYNC_CONNECT = """
import asyncio, sys
from dbrewind import ConnectionFailedError, parse_url
from dbrewind.provision import make_async_engine

async def connect():
    engine = make_async_engine(parse_url(sys.argv[1]))
    try:
        async with engine.connect():
            pass
    finally:
        await engine.dispose()

try:
    asyncio.run(connect())
except ConnectionFailedError as exc:
    print("ConnectionFailedError", type(exc).__name__, exc)
"""
"""Connect to the URL given through dbrewind's async engine factory; print the error."""


async def async_connect(url: str) -> None:
    """Connect to ``url`` through dbrewind's async engine factory, and close."""
    from dbrewind.provision import make_async_engine

    engine = make_async_engine(parse_url(url))
    try:
        async with engine.connect():
            pass
    finally:
        await engine.dispose()


# ------------------------------------------------------- names and passwords


def _drop_all(backend: str, prefix: str) -> None:
    engine = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            quote_name = conn.dialect.identifier_preparer.quote_identifier
            for name in databases_named(backend, prefix):
                force = " WITH (FORCE)" if backend == "postgresql" else ""
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote_name(name)}{force}")
    finally:
        engine.dispose()


HOSTILE_NAMES = {
    "quotes and a semicolon": "{p}_test'; DROP TABLE x; --",
    "double quotes and backticks": '{p}_"odd"_`test`',
    "unicode": "{p}_café_测试_test",
    "percent and spaces": "{p} 100% test",
}


def hostile_url(backend: str, name: str, tmp_path: Path) -> str:
    """A URL on ``name``, percent-escaped (with the test password where the server's
    authentication ignores it: PostgreSQL here trusts local connections)."""
    if backend == "sqlite":
        return f"sqlite:///{quote(str(tmp_path / (name + '.db')))}"
    password = PASSWORD if backend == "postgresql" else None
    base = server(backend).set(password=password)._replace(database=None)
    return f"{base.render_as_string(False).rstrip('/')}/{quote(name, safe='')}"


def test_database_names_with_quotes_semicolons_unicode_and_escapes(
    backend: str, pytester: pytest.Pytester, tmp_path: Path, record_property: RecordProperty
) -> None:
    """database names with quotes, semicolons, backticks, unicode, '%' and spaces"""
    prefix = f"dbrw_{uuid.uuid4().hex[:6]}"
    done = []
    try:
        for label, pattern in HOSTILE_NAMES.items():
            name = pattern.format(p=prefix)
            url = hostile_url(backend, name, tmp_path)
            parsed = parse_url(url)
            assert os.path.basename(parsed.database).removesuffix(".db") == name
            with Rewinder(url) as rewinder:
                rewinder.prepare(lambda conn: conn.execute(text("CREATE TABLE t (id INT)")))
                with rewinder.engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (1)"))
                assert len(rewinder.rewind().tables) == 1
                with rewinder.connection() as conn:
                    assert conn.execute(text("SELECT COUNT(*) FROM t")).scalar() == 0
                assert not secrets_in(repr(rewinder))
                rewinder.drop()
            assert not Rewinder(url).exists()
            done.append(label)
        # and a whole plugin run on the first of them
        name = HOSTILE_NAMES["quotes and a semicolon"].format(p=prefix)
        run = plugin_run(pytester, hostile_url(backend, name, tmp_path), subprocess=True)
        assert run.ret == pytest.ExitCode.OK, run.output
        assert not secrets_in(run.output), run.output
    finally:
        if backend != "sqlite":
            _drop_all(backend, prefix)
    record_property(
        "result", f"prepared, rewound and dropped: {', '.join(done)}; plugin run passed"
    )


@pytest.mark.backends("postgresql", "mysql")
def test_a_password_with_at_colon_and_percent(
    backend: str,
    pytester: pytest.Pytester,
    caplog: pytest.LogCaptureFixture,
    record_property: RecordProperty,
) -> None:
    """a password containing '@', ':' and '%' (percent-encoded, and raw)"""
    user = f"dbrw_u{uuid.uuid4().hex[:8]}"
    prefix = f"dbrw_{uuid.uuid4().hex[:6]}"
    admin = create_engine(SERVER_URLS[backend], isolation_level="AUTOCOMMIT")
    literal = SPECIAL_PASSWORD.replace("'", "''").replace("%", "%%")  # no DB-API placeholder
    hosts = ("'%'", "'localhost'", "'127.0.0.1'")
    with admin.connect() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(f"CREATE ROLE {user} LOGIN CREATEDB PASSWORD '{literal}'")
        else:
            for host in hosts:
                conn.execute(
                    text(f"CREATE USER '{user}'@{host} IDENTIFIED BY :pw"),
                    {"pw": SPECIAL_PASSWORD},
                )
                conn.execute(text(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@{host}"))
    base = server(backend)
    host = f"{base.host}:{base.port}"
    encoded = f"{SCHEMES[backend]}://{user}:{quote(SPECIAL_PASSWORD, safe='')}@{host}/{prefix}_test"
    try:
        parsed = parse_url(encoded)
        assert parsed.url.password == SPECIAL_PASSWORD
        assert not secrets_in(repr(parsed) + str(parsed))
        caplog.clear()
        with caplog.at_level(logging.DEBUG), Rewinder(encoded) as rewinder:
            rewinder.prepare(lambda conn: conn.execute(text("CREATE TABLE t (id INT)")))
            assert not secrets_in(repr(rewinder))
            rewinder.drop()
        assert not secrets_in(caplog.text), caplog.text
        run = plugin_run(pytester, encoded, "env", subprocess=True)
        assert run.ret == pytest.ExitCode.OK, run.output
        assert not secrets_in(run.output), run.output
        # the same password not encoded: a clear refusal that shows none of it
        raw = f"{SCHEMES[backend]}://{user}:{SPECIAL_PASSWORD}@{host}/{prefix}_test"
        said = failing(lambda: Rewinder(raw), ConfigurationError, caplog)
        message = assert_clear(said, names=f"{user}:***@", fix="percent-encode")
        assert_usage_error(plugin_run(pytester, raw), names=f"{user}:***@", fix="percent-encode")
    finally:
        _drop_all(backend, prefix)
        with admin.connect() as conn:
            if backend == "postgresql":
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {user}")
            else:
                for host in hosts:
                    conn.execute(text(f"DROP USER IF EXISTS '{user}'@{host}"))
        admin.dispose()
    record_property("result", f"encoded: works, never shown; raw: {message}")


@pytest.mark.backends("postgresql", "mysql")
def test_a_password_in_the_query_string(
    backend: str, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """a password given as ?password= in the query string, and a refused connect with it"""
    url = url_on(backend, port=closed_port(), password=None, query={"password": PASSWORD})
    shown = parse_url(url)
    assert "password=***" in shown.display()
    assert not secrets_in(repr(shown) + str(shown) + repr(Rewinder(url)))
    said = failing(lambda: Rewinder(url).prepare(), ServerUnreachableError, caplog)
    message = assert_clear(said, names="password=***", fix=ServerUnreachableError.advice)
    record_property("result", f"shown as password=***: {message}")


ASYNC_DRIVERS = {"postgresql": ("asyncpg", "psycopg_async"), "mysql": ("aiomysql", "asyncmy")}


@pytest.mark.backends("postgresql", "mysql")
def test_async_drivers_at_a_closed_port_and_with_a_user_that_does_not_exist(
    backend: str, caplog: pytest.LogCaptureFixture, record_property: RecordProperty
) -> None:
    """an async driver (asyncpg, psycopg async, aiomysql, asyncmy): closed port, no such user"""
    tried = []
    for driver in ASYNC_DRIVERS[backend]:
        for kind, url in (
            (ServerUnreachableError, url_on(backend, port=closed_port())),
            (AuthenticationError, url_on(backend, username=f"nobody_{uuid.uuid4().hex[:6]}")),
        ):
            url = f"{SCHEMES[backend]}+{driver}://{url.split('://', 1)[1]}"
            said = failing(lambda u=url: asyncio.run(async_connect(u)), kind, caplog)
            assert said.error.__cause__ is not None
            assert_clear(said, names=hidden(url).rsplit("/", 1)[0], fix=kind.advice)
        tried.append(driver)
    record_property(
        "result", f"ServerUnreachableError, AuthenticationError with {', '.join(tried)}"
    )
