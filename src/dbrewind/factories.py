"""Model factories: readable test data for SQLAlchemy models, sync and async.

::

    from dbrewind.factories import ModelFactory

    class UserFactory(ModelFactory[User]):
        __model__ = User

        @classmethod
        def defaults(cls) -> dict[str, Any]:
            seq = cls._next_seq()
            return {"name": f"User {seq}", "email": f"user{seq}@test.invalid"}

        @classmethod
        def state_admin(cls) -> dict[str, Any]:
            return {"name": "Admin", "is_admin": True}

    class PostFactory(ModelFactory[Post]):
        __model__ = Post

        @classmethod
        def defaults(cls) -> dict[str, Any]:
            return {"title": "Hello", "author": UserFactory}   # a related model

    user = UserFactory.make()                                # in memory only
    admin = UserFactory.state("admin").create(session=session)
    posts = PostFactory.create_many(3, session=session)      # each with its own author
    users = await UserFactory.acreate_many(5, session=async_session)

Attributes are merged in this order: :meth:`ModelFactory.defaults`, then each
chosen state in the order given, then the keyword overrides. A value that is a
factory class or a :class:`FactoryBuilder` is a related model: it is built
(``make``) or created first (``create``) and assigned; on a relationship the
instance is assigned, on a foreign-key column its primary key.

``create`` adds to the session and flushes (ids are assigned, rows are
written in the session's transaction); committing is the test's decision.
For an :class:`~sqlalchemy.ext.asyncio.AsyncSession` use the ``a``-prefixed
twins :meth:`~FactoryBuilder.acreate` and :meth:`~FactoryBuilder.acreate_many`;
they run the same code through ``AsyncSession.run_sync``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import NoInspectionAvailable
from sqlalchemy.orm import ColumnProperty, Mapper, Session

from ._asyncio import is_async_session
from .exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["FactoryBuilder", "ModelFactory"]

T = TypeVar("T")

_seq_lock = threading.Lock()
_sequences: dict[type[Any], int] = {}


class ModelFactory(Generic[T]):
    """Base class of a model's factory: set ``__model__``, override :meth:`defaults`.

    Named states are classmethods ``state_<name>()`` returning the attributes
    they set; choose them with :meth:`state`. Every building method is a
    classmethod, so factories are used without instantiating them.
    """

    __model__: ClassVar[type[Any]]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The attributes of a model built without overrides (called once per model)."""
        return {}

    @classmethod
    def _next_seq(cls) -> int:
        """The next number of this factory's own counter: 1, 2, 3, ... (thread-safe)."""
        with _seq_lock:
            value = _sequences.get(cls, 0) + 1
            _sequences[cls] = value
            return value

    @classmethod
    def reset_sequence(cls, value: int = 0) -> None:
        """Restart this factory's counter, so the next :meth:`_next_seq` is ``value + 1``."""
        with _seq_lock:
            _sequences[cls] = value

    @classmethod
    def available_states(cls) -> list[str]:
        """The states this factory defines (its ``state_<name>`` classmethods), sorted."""
        return sorted(
            name[len("state_") :]
            for name in dir(cls)
            if name.startswith("state_") and callable(getattr(cls, name))
        )

    @classmethod
    def builder(cls) -> FactoryBuilder[T]:
        """A :class:`FactoryBuilder` for this factory, with no state chosen."""
        return FactoryBuilder(cls)

    @classmethod
    def state(cls, *names: str) -> FactoryBuilder[T]:
        """A builder with the named states applied in order; chain more with ``.state()``."""
        return cls.builder().state(*names)

    @classmethod
    def make(cls, **overrides: Any) -> T:
        """Build one model in memory (related models are built, not saved)."""
        return cls.builder().make(**overrides)

    @classmethod
    def make_batch(cls, n: int, **overrides: Any) -> list[T]:
        """Build ``n`` models in memory."""
        return cls.builder().make_batch(n, **overrides)

    @classmethod
    def create(cls, *, session: Session, **overrides: Any) -> T:
        """Build one model, add it to ``session`` and flush (related models first)."""
        return cls.builder().create(session=session, **overrides)

    @classmethod
    def create_many(cls, n: int, *, session: Session, **overrides: Any) -> list[T]:
        """Build ``n`` models, add them to ``session`` and flush once."""
        return cls.builder().create_many(n, session=session, **overrides)

    @classmethod
    async def acreate(cls, *, session: AsyncSession, **overrides: Any) -> T:
        """:meth:`create` through an ``AsyncSession``."""
        return await cls.builder().acreate(session=session, **overrides)

    @classmethod
    async def acreate_many(cls, n: int, *, session: AsyncSession, **overrides: Any) -> list[T]:
        """:meth:`create_many` through an ``AsyncSession``."""
        return await cls.builder().acreate_many(n, session=session, **overrides)


class FactoryBuilder(Generic[T]):
    """A factory with a chosen list of states; immutable, so it can be kept and reused."""

    def __init__(self, factory: type[ModelFactory[T]], states: tuple[str, ...] = ()) -> None:
        self.factory = factory
        self.states = states

    def __repr__(self) -> str:
        chosen = "".join(f".state({s!r})" for s in self.states)
        return f"{self.factory.__name__}{chosen}"

    def state(self, *names: str) -> FactoryBuilder[T]:
        """A new builder with ``names`` applied after the states chosen so far."""
        available = self.factory.available_states()
        for name in names:
            if name not in available:
                listing = ", ".join(available) if available else "none defined"
                raise ConfigurationError(
                    f"{self.factory.__name__} has no state {name!r}. Available states: "
                    f"{listing}. Define it as a classmethod state_{name}() returning the "
                    "attributes it sets."
                )
        return FactoryBuilder(self.factory, self.states + names)

    def attributes(self, **overrides: Any) -> dict[str, Any]:
        """The merged attributes for one model: defaults, states, overrides (unresolved)."""
        attrs = dict(self.factory.defaults())
        for name in self.states:
            attrs.update(getattr(self.factory, f"state_{name}")())
        attrs.update(overrides)
        return attrs

    # -------------------------------------------------------------- building
    def _model(self) -> type[Any]:
        model = getattr(self.factory, "__model__", None)
        if model is None:
            raise ConfigurationError(
                f"{self.factory.__name__} has no __model__. Set it to the model class, "
                f"e.g. `__model__ = User` in the class body."
            )
        return cast(type[Any], model)

    def _build(self, session: Session | None, overrides: Mapping[str, Any]) -> T:
        model = self._model()
        mapper = _mapper(model)
        attrs = self.attributes(**overrides)
        for key, value in list(attrs.items()):
            related = _as_builder(value)
            if related is None:
                continue
            instance = related.make() if session is None else related._create(session, {})
            attrs[key] = self._link(mapper, key, instance, session is None)
        try:
            return cast(T, model(**attrs))
        except TypeError as exc:
            raise ConfigurationError(
                f"{self!r} could not build {model.__name__}: {exc}. Check the names returned "
                "by defaults(), the chosen states and the overrides."
            ) from exc

    def _link(self, mapper: Mapper[Any] | None, key: str, related: object, making: bool) -> object:
        prop = mapper.attrs.get(key) if mapper is not None else None
        if not isinstance(prop, ColumnProperty):
            return related
        # A foreign-key column: it takes the related row's primary key.
        if making:
            raise ConfigurationError(
                f"{self!r}: '{key}' is a column, so the related model must be saved to get "
                f"its key. Use create()/acreate(), or assign the related model through a "
                "relationship attribute instead of the column."
            )
        identity = sa_inspect(related).identity
        if identity is None or len(identity) != 1:
            raise ConfigurationError(
                f"{self!r}: cannot assign {related!r} to column '{key}': it has no "
                "single-column primary key. Assign it through a relationship attribute."
            )
        return identity[0]

    def _create(self, session: Session, overrides: Mapping[str, Any]) -> T:
        instance = self._build(session, overrides)
        session.add(instance)
        session.flush()
        return instance

    def _create_many(self, session: Session, n: int, overrides: Mapping[str, Any]) -> list[T]:
        instances: list[T] = []
        for _ in range(_count(n)):
            # Added one by one: building the next one flushes its related models,
            # and an instance not yet in the session would be skipped by that flush.
            instance = self._build(session, overrides)
            session.add(instance)
            instances.append(instance)
        session.flush()
        return instances

    def make(self, **overrides: Any) -> T:
        """Build one model in memory (related models are built, not saved)."""
        return self._build(None, overrides)

    def make_batch(self, n: int, **overrides: Any) -> list[T]:
        """Build ``n`` models in memory."""
        return [self._build(None, overrides) for _ in range(_count(n))]

    def create(self, *, session: Session, **overrides: Any) -> T:
        """Build one model, add it to ``session`` and flush (related models first)."""
        return self._create(_sync_session(session, "create", self), overrides)

    def create_many(self, n: int, *, session: Session, **overrides: Any) -> list[T]:
        """Build ``n`` models, add them to ``session`` and flush once."""
        return self._create_many(_sync_session(session, "create_many", self), n, overrides)

    async def acreate(self, *, session: AsyncSession, **overrides: Any) -> T:
        """:meth:`create` through an ``AsyncSession`` (the same code, via ``run_sync``)."""
        _async_session(session, "acreate", self)
        return await session.run_sync(self._create, overrides)

    async def acreate_many(self, n: int, *, session: AsyncSession, **overrides: Any) -> list[T]:
        """:meth:`create_many` through an ``AsyncSession``."""
        _async_session(session, "acreate_many", self)
        return await session.run_sync(self._create_many, n, overrides)


def _as_builder(value: object) -> FactoryBuilder[Any] | None:
    if isinstance(value, FactoryBuilder):
        return value
    if isinstance(value, type) and issubclass(value, ModelFactory):
        return value.builder()
    return None


def _mapper(model: type[Any]) -> Mapper[Any] | None:
    try:
        found = sa_inspect(model)
    except NoInspectionAvailable:
        return None
    return found if isinstance(found, Mapper) else None


def _count(n: int) -> int:
    if not isinstance(n, int) or n < 0:
        raise ConfigurationError(f"The number of models must be an int >= 0, got {n!r}.")
    return n


def _sync_session(session: object, method: str, builder: FactoryBuilder[Any]) -> Session:
    if is_async_session(session):
        raise ConfigurationError(
            f"{builder!r}.{method}() got an AsyncSession. Use "
            f"`await {builder!r}.a{method}(session=...)` for async sessions."
        )
    if not isinstance(session, Session):
        raise ConfigurationError(
            f"{builder!r}.{method}() needs a SQLAlchemy Session, got {type(session).__name__}."
        )
    return session


def _async_session(session: object, method: str, builder: FactoryBuilder[Any]) -> None:
    if isinstance(session, Session):
        raise ConfigurationError(
            f"{builder!r}.{method}() got a sync Session. Use "
            f"`{builder!r}.{method[1:]}(session=...)` for sync sessions."
        )
    if not is_async_session(session):
        raise ConfigurationError(
            f"{builder!r}.{method}() needs an AsyncSession, got {type(session).__name__}."
        )
