"""Bridges: the factory_boy and polyfactory factories a team has, writing through the
running test's session.

Nothing to rewrite: the factories stay as they are, and one line makes them write
where the test does, into its rollback sandbox, so the next test starts clean.

**In the factory** (factory_boy's ``class Meta``, polyfactory's class body)::

    import factory
    from dbrewind.bridges import test_async_session, test_session
    from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory


    class UserFactory(factory.alchemy.SQLAlchemyModelFactory):
        class Meta:
            model = User
            sqlalchemy_session_factory = test_session  # the one line
            sqlalchemy_session_persistence = "flush"

        email = factory.Sequence(lambda n: f"user{n}@test.invalid")


    class AuthorFactory(SQLAlchemyFactory[Author]):
        __session__ = test_session  # create_sync(), create_batch_sync()
        __async_session__ = test_async_session  # await create_async(), create_batch_async()

Both libraries call the function with no arguments each time they save (factory_boy
in ``_create``, polyfactory when it picks its persistence: ``cls.__session__()``),
never when the class is made: it hands them the test's ``db_session``
(``async_db_session`` for polyfactory's async methods), set up on demand in a sync
test that uses the database. A ``SubFactory`` or polyfactory's related models go
through the same session. factory_boy keeps the session it was handed in the
factory's ``_meta.sqlalchemy_session``; as the test ends that is cleared, so no
factory holds the test's closed session (and its objects) until its next create.

**Or, factories untouched**, in ``conftest.py``: :func:`use_test_session` binds the
factories named and every subclass of them (a project's base factory: all its
factories), for the whole run::

    dbrewind.bridges.use_test_session(BaseFactory, BasePolyFactory)

It returns a :class:`Binding` that :meth:`~Binding.restore` puts back as it was;
as a session fixture, bound for the run and restored after it::

    @pytest.fixture(scope="session", autouse=True)
    def _factories_on_the_test_session():
        with dbrewind.bridges.use_test_session(BaseFactory, BasePolyFactory):
            yield

**Persistence.** ``"flush"`` is right inside the rollback sandbox (the row gets its
id, nothing is committed). ``"commit"`` works too, factory_boy's and polyfactory's
default alike: inside the sandbox a commit is a savepoint's release, and the test's
outer transaction still rolls it all back. factory_boy's default, no persistence,
only adds the object to the session (it is flushed by the next query). The binding
keeps each factory's own unless ``persistence=`` says otherwise.

**Sequences.** factory_boy's ``factory.Sequence`` counts across the whole run, one
counter shared by a factory and its subclasses of the same model;
``Factory.reset_sequence(value=None, force=False)`` sets its next number (``None``:
``_setup_next_sequence()``, 0 unless overridden; on a subclass that shares its
parent's counter it raises unless ``force=True``, which restarts the parent's too).
The line in ``Meta`` leaves them as they are. :func:`use_test_session` restarts
each bound factory's counter for every test (``restart_sequences=True``): a test's
first user is ``user0`` whatever ran before it, and a module-scoped fixture's users
stay counted for its module (no second ``user0`` beside them).
``reset_sequence()`` in a test still works, for that test. A bound factory that
shares the counter of a factory not bound keeps counting with it. polyfactory has
no sequences.

**Async.** polyfactory's ``await create_async()`` writes through the test's
``async_db_session``. factory_boy is sync only: in an async test its factories run
inside ``await async_db_session.run_sync(lambda _: UserFactory.create())``, where
the bridge hands them the AsyncSession's own sync session; called on the event
loop itself they would only schedule the flush, so they are refused, with that fix
in the message.

**Fixtures wider than a test** (``scope="module"``) have no test session to take:
write inside ``with dbrewind.bridges.using(module_db_session):``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import _test_context
from ._asyncio import is_async_session
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = [
    "Binding",
    "test_async_session",
    "test_session",
    "use_test_session",
    "using",
]

Persistence = Literal["flush", "commit"]
_PERSISTENCES = ("flush", "commit")
_F = TypeVar("_F", bound=Callable[..., Any])


def _not_a_test(function: _F) -> _F:
    # ``from dbrewind.bridges import test_session`` in a test module: pytest must not
    # collect it as a test
    function.__test__ = False  # type: ignore[attr-defined]
    return function


# ------------------------------------------------------------- the session


_pinned: list[Any] = []
"""The sessions :func:`using` blocks name, innermost last."""


@contextmanager
def using(session: Any) -> Iterator[Any]:
    """For the block, the bridged factories write through ``session``.

    For a fixture wider than a test, which has no test session to take::

        @pytest.fixture(scope="module")
        def team(module_db_session):
            with dbrewind.bridges.using(module_db_session):
                return UserFactory.create_batch(3)

    :param session: a SQLAlchemy ``Session`` or ``AsyncSession``.
    """
    _pinned.append(session)
    try:
        yield session
    finally:
        for index in range(len(_pinned) - 1, -1, -1):
            if _pinned[index] is session:
                del _pinned[index]
                break


def _caller(frame_depth: int) -> type | None:
    """The factory class saving now: both libraries call the session function from a
    classmethod of the factory (``cls``), so its frame names it."""
    try:
        owner = sys._getframe(frame_depth + 1).f_locals.get("cls")
    except ValueError:  # pragma: no cover - a stack that shallow
        owner = None
    return owner if isinstance(owner, type) else None


def _name(owner: type | None) -> str:
    """The factory, for the message."""
    return owner.__name__ if owner is not None else "The factory"


_handed: dict[int, tuple[Any, Any]] = {}
"""The factory_boy options (``_meta``) handed a session in the running test, and that
session: factory_boy keeps it there (``_meta.sqlalchemy_session``) after the create."""


def _keep_track(owner: type | None, session: Any) -> None:
    meta = getattr(owner, "_meta", None)
    if meta is not None and hasattr(meta, "sqlalchemy_session_factory"):
        _handed[id(meta)] = (meta, session)


def _forget_handed() -> None:
    """As a test ends: no factory keeps its session (closed by then) until its next create."""
    while _handed:
        meta, session = _handed.popitem()[1]
        if getattr(meta, "sqlalchemy_session", None) is session:
            meta.sqlalchemy_session = None


_test_context.at_test_end(_forget_handed)


def _the_session(who: str, wanted: str) -> Any:
    if _pinned:
        return _pinned[-1]
    try:
        return _test_context.current_session(what=who)
    except ConfigurationError as exc:
        test = _test_context.running_test()
        where = (
            f"{test} has no dbrewind session to write to: ask for {wanted} in the test"
            if test is not None
            else f"no test is running: create through it inside a test that uses {wanted}"
        )
        raise ConfigurationError(
            f"{who} writes through the running test's session (dbrewind.bridges), and "
            f"{where}. In a fixture wider than a test (scope='module'), create inside "
            "'with dbrewind.bridges.using(module_db_session):'."
        ) from exc


@_not_a_test
def test_session(**_: Any) -> Session:
    """The running test's sync ``Session``: factory_boy's ``sqlalchemy_session_factory``
    and polyfactory's ``__session__``.

    The test's ``db_session`` (set up on demand in a sync test that uses the
    database), or the session of the enclosing :func:`using` block. In an async test
    whose session is an AsyncSession: that session's own sync session while inside
    ``await async_db_session.run_sync(...)``, else refused.

    Neither library passes arguments; the signature is a session maker's, which
    polyfactory's ``__session__`` is typed as.

    :raises ConfigurationError: no test is running, the test has no session, or the
        test's session is an AsyncSession outside ``run_sync``; the message names the
        factory and the fix.
    """
    owner = _caller(1)
    who = _name(owner)
    session = _the_session(who, "db_session")
    if not is_async_session(session):
        _keep_track(owner, session)
        return session  # type: ignore[no-any-return]
    from sqlalchemy.util.concurrency import in_greenlet

    if in_greenlet():  # inside AsyncSession.run_sync: its sync session is usable here
        _keep_track(owner, session.sync_session)
        return session.sync_session
    name = who if who != "The factory" else "MyFactory"
    raise ConfigurationError(
        f"{who} saves synchronously (factory_boy, polyfactory's create_sync), and the "
        "test's session is an AsyncSession (async_db_session): called on the event loop, "
        "its flush() and commit() would be coroutines nobody awaits. Create inside "
        f"'await async_db_session.run_sync(lambda _: {name}.create())'; with polyfactory, "
        f"'await {name}.create_async()' with __async_session__ = "
        "dbrewind.bridges.test_async_session; or ask for db_session instead."
    )


@_not_a_test
def test_async_session(**_: Any) -> AsyncSession:
    """The running test's ``AsyncSession``: polyfactory's ``__async_session__``.

    The test's ``async_db_session``, or the session of the enclosing :func:`using`
    block.

    :raises ConfigurationError: no test is running, the test has no session, or its
        session is a sync Session; the message names the factory and the fix.
    """
    who = _name(_caller(1))
    session = _the_session(who, "async_db_session")
    if is_async_session(session):
        return session
    name = who if who != "The factory" else "MyFactory"
    raise ConfigurationError(
        f"{who} saves asynchronously (create_async, create_batch_async), and the test's "
        "session is a sync Session (db_session). Ask for async_db_session in the async "
        f"test, or use {name}.create_sync() with __session__ = dbrewind.bridges.test_session."
    )


# ------------------------------------------------------------- the binding


def _is_subclass(cls: Any, module: str, name: str) -> bool:
    """Whether ``cls`` derives from ``module.name``, without importing ``module``: no
    factory of that library can exist before it was imported."""
    loaded = sys.modules.get(module)
    base = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(base, type) and issubclass(cls, base)


def _is_factory_boy(cls: Any) -> bool:
    return _is_subclass(cls, "factory.alchemy", "SQLAlchemyModelFactory")


def _is_polyfactory(cls: Any) -> bool:
    return _is_subclass(cls, "polyfactory.factories.sqlalchemy_factory", "SQLAlchemyFactory")


def _family(root: type) -> list[type]:
    """``root`` and every subclass of it, each once, parents first."""
    found: list[type] = []
    pending = [root]
    while pending:
        cls = pending.pop(0)
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


class _TestCounter:
    """A factory_boy sequence counter (its ``next``/``reset``) kept with dbrewind's
    counters, which the pytest plugin puts back before every test (and keeps moved
    for the scope of a wider fixture that moved them)."""

    def __init__(self, owner: type) -> None:
        self.owner = owner
        self._key = ("dbrewind.bridges", owner)
        self._start: int | None = None

    def _first(self) -> int:
        if self._start is None:  # as factory_boy: asked of the factory on first use
            self._start = int(self.owner._setup_next_sequence())  # type: ignore[attr-defined]
        return self._start

    def next(self) -> int:
        return self._first() + _test_context.next_value(self._key) - 1

    def reset(self, next_value: int = 0) -> None:
        _test_context.reset_value(self._key, next_value - self._first())


_FACTORY_BOY_OPTIONS = (
    "sqlalchemy_session",
    "sqlalchemy_session_factory",
    "sqlalchemy_session_persistence",
    "counter_reference",
    "_counter",
)
_POLYFACTORY_OPTIONS = ("__session__", "__async_session__", "__persistence_method__")
_MISSING = object()


@dataclass(eq=False)
class Binding:
    """Factories bound to the test's session by :func:`use_test_session`.

    A context manager: the block's end (or :meth:`restore`) puts every factory back
    as it was. A factory_boy factory defined after the binding copies it from its
    parent and keeps it (polyfactory's read it from the parent, and follow it back).
    """

    factories: tuple[type, ...]
    """Every factory bound: those named and their subclasses, parents first."""
    _saved: list[tuple[Any, str, Any]] = field(default_factory=list, repr=False)

    def restore(self) -> None:
        """Put every bound factory's session, persistence and counter back (once)."""
        while self._saved:
            target, name, value = self._saved.pop()
            if value is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, value)

    def __enter__(self) -> Binding:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()

    def _set(self, target: Any, name: str, value: Any, *, own: bool = False) -> None:
        previous = target.__dict__.get(name, _MISSING) if own else getattr(target, name)
        self._saved.append((target, name, previous))
        setattr(target, name, value)


def _bind_factory_boy(
    binding: Binding, family: list[type], persistence: Persistence | None, restart: bool
) -> None:
    counters: dict[Any, _TestCounter] = {}
    members = {cls._meta for cls in family}  # type: ignore[attr-defined]
    for cls in family:
        meta = cls._meta  # type: ignore[attr-defined]
        if not hasattr(meta, "sqlalchemy_session_factory"):
            continue  # SQLAlchemyModelFactory itself: its options live on its subclasses
        missing = [name for name in _FACTORY_BOY_OPTIONS if not hasattr(meta, name)]
        if restart and missing:
            raise ConfigurationError(
                f"{cls.__name__}: this factory_boy keeps no sequence counter where "
                f"dbrewind.bridges looks (no {', '.join(missing)}). Bind it with "
                "restart_sequences=False, and reset its sequences with reset_sequence()."
            )
        binding._set(meta, "sqlalchemy_session", None)  # taken afresh at every create
        binding._set(meta, "sqlalchemy_session_factory", test_session)
        if persistence is not None:
            binding._set(meta, "sqlalchemy_session_persistence", persistence)
        if not restart:
            continue
        reference = meta.counter_reference
        if reference in members:
            owner = reference.factory
            binding._set(meta, "_counter", counters.setdefault(owner, _TestCounter(owner)))
        elif isinstance(reference._counter, _TestCounter):  # its owner was bound before
            binding._set(meta, "_counter", reference._counter)
        # else: a counter shared with a factory not bound keeps counting with it


def _bind_polyfactory(
    binding: Binding, family: list[type], persistence: Persistence | None
) -> None:
    method: Any = None
    if persistence is not None:
        from polyfactory.factories.sqlalchemy_factory import SQLAlchemyPersistenceMethod

        method = SQLAlchemyPersistenceMethod(persistence)
    root = family[0]
    for cls in family:  # the root, and the subclasses that set their own
        for name, value in (
            ("__session__", test_session),
            ("__async_session__", test_async_session),
            ("__persistence_method__", method),
        ):
            if value is not None and (cls is root or name in cls.__dict__):
                binding._set(cls, name, value, own=True)


def use_test_session(
    *factories: type,
    persistence: Persistence | None = None,
    restart_sequences: bool = True,
) -> Binding:
    """Bind existing factories, and every subclass of them, to the running test's session.

    For factory_boy ``SQLAlchemyModelFactory`` classes, ``sqlalchemy_session_factory``
    becomes :func:`test_session`; for polyfactory ``SQLAlchemyFactory`` classes,
    ``__session__`` and ``__async_session__`` become :func:`test_session` and
    :func:`test_async_session`. Call it in ``conftest.py`` (bound for the whole run),
    or use the returned :class:`Binding` as a context manager (put back afterwards).

    :param factories: factory classes; a project's base factory binds all its
        factories (the libraries' own base classes: every factory defined so far).
    :param persistence: ``"flush"`` or ``"commit"`` for every bound factory; None
        keeps each one's own (both work inside the rollback sandbox).
    :param restart_sequences: factory_boy's sequences restart for every test, per
        bound factory (under the pytest plugin), instead of counting across the run.
    :raises ConfigurationError: no factory given, one that is neither kind, or an
        unknown ``persistence``.
    """
    if not factories:
        raise ConfigurationError(
            "use_test_session() binds no factory: name the factory classes, or their "
            "base class, e.g. use_test_session(BaseFactory)."
        )
    if persistence is not None and persistence not in _PERSISTENCES:
        raise ConfigurationError(
            f"use_test_session(persistence={persistence!r}): use 'flush' (right inside "
            "the rollback sandbox), 'commit' (a savepoint there), or None to keep each "
            "factory's own."
        )
    for cls in factories:
        if not (_is_factory_boy(cls) or _is_polyfactory(cls)):
            raise ConfigurationError(
                f"use_test_session() got {cls!r}, which is neither a factory_boy "
                "SQLAlchemyModelFactory nor a polyfactory SQLAlchemyFactory. Name "
                "factory classes of those kinds, or their base class."
            )
    bound: list[type] = []
    binding = Binding(factories=())
    try:
        for cls in factories:
            family = [c for c in _family(cls) if c not in bound]
            bound += family
            if _is_factory_boy(cls):
                _bind_factory_boy(binding, family, persistence, restart_sequences)
            else:
                _bind_polyfactory(binding, family, persistence)
    except BaseException:
        binding.restore()
        raise
    binding.factories = tuple(bound)
    return binding
