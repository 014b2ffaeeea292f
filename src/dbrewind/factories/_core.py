"""ModelFactory and FactoryBuilder: planning a build, with no I/O of its own.

A build is a generator (:data:`._adapter.Plan`): it merges each model's attributes,
builds or creates the related models, computes the lazy values, constructs the
models and yields every batch that must be saved before it can go on (a foreign-key
column needs its row's key). A store (:mod:`._sqlalchemy`, :mod:`._peewee`) saves the
batches, sync or async; the plan is the same for both.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, Union, cast, overload

from .. import _test_context
from ..exceptions import ConfigurationError
from ._adapter import Adapter, AsyncStore, Link, Plan, Store, adapter_for, drive

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["Attributes", "CreatedList", "FactoryBuilder", "Hook", "Lazy", "ModelFactory", "lazy"]

T = TypeVar("T")
R = TypeVar("R")

Hook = Callable[[Any, Any], Any]
"""An after-create callback: ``hook(instance, session)``; it may return an awaitable
when the session is async."""


# ------------------------------------------------------------------ values
@dataclass(frozen=True)
class Lazy:
    """An attribute computed from the model's other attributes, once they are known.

    ``fn`` receives the resolved attributes (read as ``attrs.name`` or
    ``attrs["name"]``; related models are instances by then) and returns the value.
    Lazy values may read each other: they are computed in the order they need,
    and a cycle is an error that names it.
    """

    fn: Callable[[Attributes], Any]


def lazy(fn: Callable[[Attributes], Any]) -> Lazy:
    """Mark ``fn`` as a lazy attribute: ``"email": lazy(lambda a: f"{a.name}@x.test")``."""
    return Lazy(fn)


class Attributes(Mapping[str, Any]):
    """One model's attributes as a lazy value sees them (read-only)."""

    def __init__(self, values: dict[str, Any], owner: object) -> None:
        self._values = values
        self._owner = owner
        self._computing: list[str] = []

    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            known = ", ".join(sorted(self._values))
            asking = f"the lazy value of {self._computing[-1]!r}" if self._computing else "?"
            raise ConfigurationError(
                f"{self._owner}: {asking} reads {key!r}, which is not set. Set: {known}. "
                f"Give {key!r} a value in defaults(), a state or the overrides."
            )
        value = self._values[key]
        if not isinstance(value, Lazy):
            return value
        if key in self._computing:
            cycle = " -> ".join([*self._computing[self._computing.index(key) :], key])
            raise ConfigurationError(
                f"{self._owner}: lazy values read each other in a cycle: {cycle}. "
                "Give one of them a plain value."
            )
        self._computing.append(key)
        try:
            result = value.fn(self)
        finally:
            self._computing.pop()
        self._values[key] = result
        return result

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def resolve(self) -> None:
        """Compute every lazy value, in place."""
        for key in list(self._values):
            self[key]


class CreatedList(list[T]):
    """The list :meth:`FactoryBuilder.create_many` returns with a sync session.

    It is a plain list, and awaitable too (awaiting it gives the list itself), so
    ``await UserFactory.create_many(5, session=session)`` works whichever kind of
    session it is handed.
    """

    def __await__(self) -> Generator[Any, None, CreatedList[T]]:
        yield from ()
        return self


# ----------------------------------------------------------------- factory
class ModelFactory(Generic[T]):
    """Base class of a model's factory: set ``__model__``, override :meth:`defaults`.

    Named states are classmethods ``state_<name>()`` returning the attributes
    they set; choose them with :meth:`state`. Every building method is a
    classmethod (each returns or uses a :class:`FactoryBuilder`), so factories
    are used without instantiating them.
    """

    __model__: ClassVar[type[Any]]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The attributes of a model built without overrides (called once per model)."""
        return {}

    @classmethod
    def after_create(cls, instance: T, session: Any) -> Any:
        """Called with each model this factory created, once its batch is saved.

        ``session`` is what the model was saved through (the ``Session``,
        ``AsyncSession`` or peewee database). Return an awaitable to have it
        awaited (async sessions and peewee-async databases only). Does nothing
        unless overridden.
        """
        return None

    @classmethod
    def _next_seq(cls) -> int:
        """The next number of this factory's counter: 1, 2, 3, ...

        A factory and its subclasses of the same ``__model__`` share one counter
        (as factory_boy's sequences do): ``AdminFactory(UserFactory)`` goes on from
        UserFactory's ``user2``, never a second ``user1`` in the same test. Under the
        pytest plugin the counters start again with every test (a test's first user
        is user1, whatever ran before, on any xdist worker); a module- or
        class-scoped fixture's models stay counted for its scope.
        """
        return _test_context.next_value(_counter_owner(cls))

    @classmethod
    def reset_sequence(cls, value: int = 0) -> None:
        """Restart this factory's counter, so the next :meth:`_next_seq` is ``value + 1``
        (the counter it shares with its parents and subclasses of the same model)."""
        _test_context.reset_value(_counter_owner(cls), value)

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
        """A :class:`FactoryBuilder` for this factory, with nothing chosen."""
        return FactoryBuilder(cls)

    @classmethod
    def state(cls, *names: str) -> FactoryBuilder[T]:
        """A builder with the named states applied in order; chain more with ``.state()``."""
        return cls.builder().state(*names)

    @classmethod
    def for_(cls, parent: Any, *, relation: str | None = None) -> FactoryBuilder[T]:
        """A builder whose models belong to ``parent``: see :meth:`FactoryBuilder.for_`."""
        return cls.builder().for_(parent, relation=relation)

    @classmethod
    def has(
        cls, children: Any, count: int = 1, *, relation: str | None = None
    ) -> FactoryBuilder[T]:
        """A builder whose models each get ``count`` children: see :meth:`FactoryBuilder.has`."""
        return cls.builder().has(children, count, relation=relation)

    @classmethod
    def after_creating(cls, hook: Hook) -> FactoryBuilder[T]:
        """A builder that calls ``hook(instance, session)`` after each model is created."""
        return cls.builder().after_creating(hook)

    @classmethod
    def make(cls, **overrides: Any) -> T:
        """Build one model in memory (related models are built, not saved)."""
        return cls.builder().make(**overrides)

    @classmethod
    def make_batch(cls, n: int, **overrides: Any) -> list[T]:
        """Build ``n`` models in memory."""
        return cls.builder().make_batch(n, **overrides)

    @overload
    @classmethod
    def create(cls, *, session: Session, **overrides: Any) -> T: ...
    @overload
    @classmethod
    def create(cls, *, session: AsyncSession, **overrides: Any) -> Awaitable[T]: ...
    @overload
    @classmethod
    def create(cls, *, session: None = None, **overrides: Any) -> T: ...
    @overload
    @classmethod
    def create(cls, *, session: object, **overrides: Any) -> Union[T, Awaitable[T]]: ...  # noqa: UP007
    @classmethod
    def create(cls, *, session: object = None, **overrides: Any) -> Union[T, Awaitable[T]]:  # noqa: UP007
        """Build one model and save it: see :meth:`FactoryBuilder.create`."""
        return cls.builder().create(session=session, **overrides)

    @overload
    @classmethod
    def create_many(cls, n: int, *, session: Session, **overrides: Any) -> CreatedList[T]: ...
    @overload
    @classmethod
    def create_many(
        cls, n: int, *, session: AsyncSession, **overrides: Any
    ) -> Awaitable[list[T]]: ...
    @overload
    @classmethod
    def create_many(cls, n: int, *, session: None = None, **overrides: Any) -> CreatedList[T]: ...
    @overload
    @classmethod
    def create_many(
        cls, n: int, *, session: object, **overrides: Any
    ) -> CreatedList[T] | Awaitable[list[T]]: ...
    @classmethod
    def create_many(
        cls, n: int, *, session: object = None, **overrides: Any
    ) -> CreatedList[T] | Awaitable[list[T]]:
        """Build ``n`` models and save them in batches: see :meth:`FactoryBuilder.create_many`."""
        return cls.builder().create_many(n, session=session, **overrides)

    @classmethod
    async def acreate(cls, *, session: object = None, **overrides: Any) -> T:
        """:meth:`create` through an ``AsyncSession`` (or a peewee-async database)."""
        return await cls.builder().acreate(session=session, **overrides)

    @classmethod
    async def acreate_many(cls, n: int, *, session: object = None, **overrides: Any) -> list[T]:
        """:meth:`create_many` through an ``AsyncSession`` (or a peewee-async database)."""
        return await cls.builder().acreate_many(n, session=session, **overrides)


@dataclass(frozen=True)
class _Parent:
    instance: Any
    builder: FactoryBuilder[Any] | None
    relation: str | None

    def shown(self) -> str:
        return repr(self.builder) if self.builder is not None else _short(self.instance)


@dataclass(frozen=True)
class _Children:
    builder: FactoryBuilder[Any]
    count: int
    relation: str | None


@dataclass(frozen=True, eq=True)
class FactoryBuilder(Generic[T]):
    """A factory with its choices: states, parents, children, hooks.

    Immutable: every method that chooses returns a new builder, so a builder can be
    kept in a module and reused (``admins = UserFactory.state("admin")``).
    """

    factory: type[ModelFactory[T]]
    states: tuple[str, ...] = ()
    parents: tuple[_Parent, ...] = field(default=(), repr=False)
    children: tuple[_Children, ...] = field(default=(), repr=False)
    hooks: tuple[Hook, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        shown = self.factory.__name__
        shown += "".join(f".state({s!r})" for s in self.states)
        shown += "".join(f".for_({p.shown()})" for p in self.parents)
        shown += "".join(f".has({c.builder!r}, {c.count})" for c in self.children)
        return shown

    # ----------------------------------------------------------- choosing
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
        return replace(self, states=self.states + names)

    def for_(self, parent: Any, *, relation: str | None = None) -> FactoryBuilder[T]:
        """A new builder whose models belong to ``parent``.

        ``parent`` is a model instance (used as it is), a factory or a builder (one
        parent is built or created per call, shared by all the models of that call:
        ``PostFactory.for_(UserFactory.state("admin")).create_many(3)`` makes one admin
        with three posts). It is linked through the model's relationship to the
        parent's class, or its foreign-key column (which takes the parent's key);
        ``relation`` names the attribute when there are several. It replaces what
        ``defaults()`` and the states set there; a per-call override still wins.
        """
        as_builder = _as_builder(parent)
        if as_builder is None and isinstance(parent, type):
            raise ConfigurationError(
                f"{self!r}.for_({parent.__name__}): pass a model instance, a factory or a "
                f"builder, not the model class (e.g. for_({parent.__name__}Factory))."
            )
        added = _Parent(parent if as_builder is None else None, as_builder, relation)
        return replace(self, parents=(*self.parents, added))

    def has(
        self, children: Any, count: int = 1, *, relation: str | None = None
    ) -> FactoryBuilder[T]:
        """A new builder whose models each get ``count`` children, made with them.

        ``children`` is a factory or a builder. The children are linked through
        their relationship or foreign-key column to this model, or through this
        model's one-to-many (or many-to-many) relationship to theirs; ``relation``
        names the attribute (on either side) when there are several. With
        ``create_many`` all the children are saved in one batch too. ``make()``
        builds the children and links them in memory: the parent reaches them
        through its relationship when the model has one (a SQLAlchemy
        ``back_populates`` or collection); a foreign-key column cannot be linked
        before the parent is saved, so that takes ``create()``.
        """
        as_builder = _as_builder(children)
        if as_builder is None:
            raise ConfigurationError(
                f"{self!r}.has({_short(children)}): pass the children's factory or a builder "
                "of it (e.g. has(PostFactory, 3))."
            )
        kept = _Children(
            as_builder, _count(count, f"{self!r}.has({as_builder!r}, count)", "count"), relation
        )
        return replace(self, children=(*self.children, kept))

    def after_creating(self, hook: Hook) -> FactoryBuilder[T]:
        """A new builder that calls ``hook(instance, session)`` after each model is saved
        (after the factory's own :meth:`ModelFactory.after_create`). A hook that returns
        an awaitable is awaited (async sessions and peewee-async databases only)."""
        return replace(self, hooks=(*self.hooks, hook))

    # ----------------------------------------------------------- building
    def attributes(self, **overrides: Any) -> dict[str, Any]:
        """The merged attributes for one model: defaults, states, overrides (unresolved)."""
        return self._merge(overrides)[0]

    def make(self, **overrides: Any) -> T:
        """Build one model in memory (related models are built, not saved)."""
        return cast(T, drive(self._plan(_Run(False), 1, overrides), _NoStore())[0])

    def make_batch(self, n: int, **overrides: Any) -> list[T]:
        """Build ``n`` models in memory."""
        n = _count(n, f"{self!r}.make_batch(n)")
        return cast(list[T], drive(self._plan(_Run(False), n, overrides), _NoStore()))

    @overload
    def create(self, *, session: Session, **overrides: Any) -> T: ...
    @overload
    def create(self, *, session: AsyncSession, **overrides: Any) -> Awaitable[T]: ...
    @overload
    def create(self, *, session: None = None, **overrides: Any) -> T: ...
    @overload
    def create(self, *, session: object, **overrides: Any) -> Union[T, Awaitable[T]]: ...  # noqa: UP007
    def create(self, *, session: object = None, **overrides: Any) -> Union[T, Awaitable[T]]:  # noqa: UP007
        """Build one model and save it (related models first); the model.

        With a SQLAlchemy ``Session`` the model is added and flushed (ids are
        assigned, the rows written in the session's transaction; committing is
        the test's decision) and returned. With an ``AsyncSession`` the same is
        done through ``run_sync`` and an awaitable is returned. Without a
        session, the running test's (``db_session`` / ``async_db_session``
        under the pytest plugin); typed as returning the model then, so an async
        test awaits :meth:`acreate` instead. A peewee model is saved through the
        database given, or its own: a peewee-async database gives an awaitable.
        """
        store = self._store(session, "create")
        if isinstance(store, AsyncStore):
            first = _first(lambda: self._acarry(1, overrides, store, "create"))
            return _named(first, self, "create")
        return self._carry(1, overrides, store, "create")[0]

    @overload
    def create_many(self, n: int, *, session: Session, **overrides: Any) -> CreatedList[T]: ...
    @overload
    def create_many(
        self, n: int, *, session: AsyncSession, **overrides: Any
    ) -> Awaitable[list[T]]: ...
    @overload
    def create_many(self, n: int, *, session: None = None, **overrides: Any) -> CreatedList[T]: ...
    @overload
    def create_many(
        self, n: int, *, session: object, **overrides: Any
    ) -> CreatedList[T] | Awaitable[list[T]]: ...
    def create_many(
        self, n: int, *, session: object = None, **overrides: Any
    ) -> CreatedList[T] | Awaitable[list[T]]:
        """Build ``n`` models and save them in batches; the list of models.

        One batch per model class and level: ``PostFactory.create_many(100)``
        with an author each sends one batch of users and one of posts (a
        multi-row ``INSERT .. RETURNING`` where the database has it), not 200
        round trips. The session is as for :meth:`create`; with a sync one the
        list returned is a :class:`CreatedList` (also awaitable), with an async
        one an awaitable of the list.
        """
        n = _count(n, f"{self!r}.create_many(n)")
        store = self._store(session, "create_many")
        if isinstance(store, AsyncStore):
            return _named(self._acarry(n, overrides, store, "create_many"), self, "create_many")
        return self._carry(n, overrides, store, "create_many")

    async def acreate(self, *, session: object = None, **overrides: Any) -> T:
        """:meth:`create` through an ``AsyncSession`` or a peewee-async database."""
        store = self._store(session, "acreate", want_async=True)
        assert isinstance(store, AsyncStore)
        return (await self._acarry(1, overrides, store, "acreate"))[0]

    async def acreate_many(self, n: int, *, session: object = None, **overrides: Any) -> list[T]:
        """:meth:`create_many` through an ``AsyncSession`` or a peewee-async database."""
        n = _count(n, f"{self!r}.acreate_many(n)")
        store = self._store(session, "acreate_many", want_async=True)
        assert isinstance(store, AsyncStore)
        return await self._acarry(n, overrides, store, "acreate_many")

    # ----------------------------------------------------------- carrying out
    def _model(self) -> type[Any]:
        return _model_of(self.factory)

    def _store(
        self, session: object, method: str, *, want_async: bool = False
    ) -> Store | AsyncStore:
        model = self._model()
        what = f"{self!r}.{method}()"
        store = adapter_for(model).store_for(model, session, what)
        if want_async and not isinstance(store, AsyncStore):
            shown = "a sync Session" if session is not None else "a sync session"
            raise ConfigurationError(
                f"{what} got {shown} ({_short(store.session)}). Use "
                f"`{self!r}.{method[1:]}(session=...)` for sync sessions and sync peewee "
                "databases, or pass an AsyncSession."
            )
        return store

    def _whole(self, run: _Run, n: int, overrides: Mapping[str, Any]) -> Plan:
        built = yield from self._plan(run, n, overrides)
        if run.pending:
            batch, run.pending = run.pending, []
            yield batch
        return built

    def _carry(
        self, n: int, overrides: Mapping[str, Any], store: Store, method: str
    ) -> CreatedList[T]:
        run = _Run(True)
        instances = CreatedList[T](drive(self._whole(run, n, overrides), store))
        for builder, instance in run.created:
            for hook in builder._all_hooks():
                result = hook(instance, store.session)
                if inspect.isawaitable(result):
                    _close(result)
                    raise ConfigurationError(
                        f"{builder!r}: the after-create hook {_hook_name(hook)} returned an "
                        f"awaitable, but {self!r}.{method}() saved through a sync session "
                        f"({_short(store.session)}). Use an AsyncSession, or make the hook sync."
                    )
        return instances

    async def _acarry(
        self, n: int, overrides: Mapping[str, Any], store: AsyncStore, method: str
    ) -> CreatedList[T]:
        run = _Run(True)
        instances = CreatedList[T](await store.run(self._whole(run, n, overrides)))
        for builder, instance in run.created:
            for hook in builder._all_hooks():
                result = hook(instance, store.session)
                if inspect.isawaitable(result):
                    await result
        return instances

    def _all_hooks(self) -> tuple[Hook, ...]:
        return (self.factory.after_create, *self.hooks)

    def _merge(self, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        attrs = dict(self.factory.defaults())
        origins = dict.fromkeys(attrs, f"{self.factory.__name__}.defaults()")
        for name in self.states:
            values = getattr(self.factory, f"state_{name}")()
            attrs.update(values)
            origins.update(dict.fromkeys(values, f"state_{name}()"))
        attrs.update(overrides)
        origins.update(dict.fromkeys(overrides, "the overrides"))
        return attrs, origins

    def _plan(
        self,
        run: _Run,
        n: int,
        overrides: Mapping[str, Any],
        forced: list[dict[str, Any]] | None = None,
    ) -> Generator[list[Any], None, list[Any]]:
        """Build ``n`` models (``forced[i]`` set on model i last); yields batches to save."""
        model = self._model()
        adapter = adapter_for(model)
        merged = [self._merge(overrides) for _ in range(n)]
        layers = [attrs for attrs, _ in merged]

        # parents chosen with for_(): one per call, shared by its models
        for parent in self.parents:
            parent_model = (
                type(parent.instance) if parent.builder is None else parent.builder._model()
            )
            link = self._link_to(adapter, model, parent_model, parent.relation, parent.shown())
            # what defaults() and the states set there gives way to the parent, and the
            # parent to the overrides, whichever name they set it by (author, author_id)
            names = adapter.names_of(model, link)
            given = names & overrides.keys()
            for attrs, origins in merged:
                for name in names - given:
                    attrs.pop(name, None)
                    origins.pop(name, None)
            if given:
                continue
            if parent.builder is None:
                instance = parent.instance
            else:
                instance = (yield from parent.builder._plan(run, 1, {}))[0]
            value = yield from _link_value(run, adapter, link, instance, repr(self), link.key)
            for attrs, origins in merged:
                attrs[link.key] = value
                origins[link.key] = "for_()"
        for i, extra in enumerate(forced or ()):
            layers[i].update(extra)
            merged[i][1].update(dict.fromkeys(extra, "has()"))

        checked: set[str] = set()
        for attrs, origins in merged:
            for key in attrs.keys() - checked:
                checked.add(key)
                if not adapter.has_attribute(model, key):
                    listing = ", ".join(adapter.describe_attributes(model))
                    raise ConfigurationError(
                        f"{self!r}: {model.__name__} has no attribute {key!r} (set by "
                        f"{origins[key]}). Its attributes: {listing}. Rename or remove it."
                    )

        # related models given as factory values: each model its own, one batch a kind
        groups: list[tuple[str, FactoryBuilder[Any], list[int]]] = []
        for i, attrs in enumerate(layers):
            for key, value in attrs.items():
                related = _as_builder(value)
                if related is None:
                    continue
                for group_key, group_builder, members in groups:
                    if group_key == key and group_builder == related:
                        members.append(i)
                        break
                else:
                    groups.append((key, related, [i]))
        for key, related, members in groups:
            link = adapter.link_for_key(model, key)
            instances = yield from related._plan(run, len(members), {})
            for i, instance in zip(members, instances, strict=True):
                layers[i][key] = yield from _link_value(
                    run, adapter, link, instance, repr(self), key
                )

        built = []
        for attrs in layers:
            if any(isinstance(v, Lazy) for v in attrs.values()):
                Attributes(attrs, self).resolve()
            try:
                built.append(adapter.construct(model, attrs))
            except TypeError as exc:
                raise ConfigurationError(
                    f"{self!r} could not build {model.__name__}: {exc}. Check the names "
                    "returned by defaults(), the chosen states and the overrides."
                ) from exc
        run.add(self, built)

        for kids in self.children:
            child_model = kids.builder._model()
            link = self._child_link(adapter, model, child_model, kids)
            if link.collection:
                made = yield from kids.builder._plan(run, n * kids.count, {})
                for j, parent_instance in enumerate(built):
                    chunk = made[j * kids.count : (j + 1) * kids.count]
                    adapter.add_to_collection(parent_instance, link.key, chunk)
                continue
            what = repr(self)
            values = []
            for parent_instance in built:
                value = yield from _link_value(run, adapter, link, parent_instance, what, link.key)
                values.append(value)
            yield from kids.builder._plan(
                run, n * kids.count, {}, [{link.key: v} for v in values for _ in range(kids.count)]
            )
        return built

    def _link_to(
        self,
        adapter: Adapter,
        model: type[Any],
        target: type[Any],
        relation: str | None,
        shown: str,
    ) -> Link:
        links = adapter.links_to(model, target)
        tiers = [[x for x in links if not x.by_key], [x for x in links if x.by_key]]
        return _choose(tiers, relation, repr(self), model, target)

    def _child_link(
        self, adapter: Adapter, model: type[Any], child: type[Any], kids: _Children
    ) -> Link:
        links = adapter.links_to(child, model)
        tiers = [
            [x for x in links if not x.by_key],
            adapter.collections_to(model, child),
            [x for x in links if x.by_key],
        ]
        return _choose(tiers, kids.relation, repr(self), child, model)


def _choose(
    tiers: list[list[Link]], relation: str | None, what: str, model: type[Any], target: type[Any]
) -> Link:
    """The link named ``relation``, else the only one of the first tier that has any."""
    every = [x for tier in tiers for x in tier]
    names = ", ".join(x.alias or x.key for x in every)
    if relation is not None:
        for link in every:
            if relation in (link.key, link.alias):
                return link
        raise ConfigurationError(
            f"{what}: no relation {relation!r} links {model.__name__} and {target.__name__}. "
            f"The relations between them: {names or 'none'}."
        )
    for tier in ([x for x in t if x.alias is None] for t in tiers):
        if len(tier) == 1:
            return tier[0]
        if tier:
            raise ConfigurationError(
                f"{what}: {model.__name__} and {target.__name__} are linked by several "
                f"relations ({', '.join(x.key for x in tier)}). Name the one to use: "
                "relation='...'."
            )
    raise ConfigurationError(
        f"{what}: {model.__name__} has no relationship or foreign key to "
        f"{target.__name__}, so the two cannot be linked. Add one (a ForeignKey column "
        "or a relationship), or set the attribute yourself in the overrides."
    )


def _link_value(
    run: _Run, adapter: Adapter, link: Link, instance: Any, what: str, key: str
) -> Generator[list[Any], None, Any]:
    """The value to set under ``link.key`` for ``instance``; saves pending rows first
    when the link needs them saved."""
    if not run.creating:
        if link.by_key:
            raise ConfigurationError(
                f"{what}: '{key}' is a column, so the related model must be saved to get "
                "its key. Use create()/acreate(), or assign the related model through a "
                "relationship attribute instead of the column."
            )
        return instance
    if link.saved_first:
        if run.pending:
            batch, run.pending = run.pending, []
            yield batch
        found = adapter.primary_key(instance)
        if found is None:
            raise ConfigurationError(
                f"{what}: cannot link {_short(instance)} through '{key}': it has no "
                "primary key yet (it is not saved). Save it first (create()), or link it "
                "through a relationship attribute."
            )
        if link.by_key:
            return found
    return instance


class _Run:
    """One make/create call: the models built so far, and those waiting to be saved."""

    def __init__(self, creating: bool) -> None:
        self.creating = creating
        self.pending: list[Any] = []
        self.created: list[tuple[FactoryBuilder[Any], Any]] = []

    def add(self, builder: FactoryBuilder[Any], instances: list[Any]) -> None:
        if self.creating:
            self.pending += instances
            self.created += [(builder, x) for x in instances]


class _NoStore(Store):
    session = None

    def flush(self, instances: list[Any]) -> None:  # make(): nothing is saved
        return None


# ----------------------------------------------------------------- helpers
def _as_builder(value: object) -> FactoryBuilder[Any] | None:
    if isinstance(value, FactoryBuilder):
        return value
    if isinstance(value, type) and issubclass(value, ModelFactory):
        return value.builder()
    return None


def _counter_owner(factory: type[ModelFactory[Any]]) -> type[ModelFactory[Any]]:
    """The factory whose counter ``factory`` counts with: its farthest ancestor of the
    same ``__model__`` (itself when it has none, or no model)."""
    model = getattr(factory, "__model__", None)
    owner = factory
    if model is None:
        return owner
    for base in factory.__mro__[1:]:
        if (
            isinstance(base, type)
            and issubclass(base, ModelFactory)
            and getattr(base, "__model__", None) is model
        ):
            owner = base
    return owner


def _model_of(factory: type[ModelFactory[Any]]) -> type[Any]:
    model = getattr(factory, "__model__", None)
    if model is None:
        raise ConfigurationError(
            f"{factory.__name__} has no __model__. Set it to the model class, "
            f"e.g. `__model__ = User` in the class body."
        )
    return cast(type[Any], model)


def _count(n: object, what: str, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigurationError(f"{what}: {name} must be an int >= 0, got {n!r}.")
    return n


def _short(obj: object) -> str:
    if isinstance(obj, type):
        return repr(obj)
    shown = repr(obj)
    if type(obj).__repr__ is object.__repr__ or len(shown) > 60:
        return f"<{type(obj).__name__} object>"
    return shown


def _hook_name(hook: Hook) -> str:
    return str(getattr(hook, "__qualname__", None) or repr(hook))


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


async def _first(models: Callable[[], Coroutine[Any, Any, list[R]]]) -> R:
    return (await models())[0]


def _named(
    coroutine: Coroutine[Any, Any, R], builder: FactoryBuilder[Any], method: str
) -> Coroutine[Any, Any, R]:
    """``coroutine``, named after the call, so "never awaited" warnings say which."""
    setattr(coroutine, "__qualname__", f"{builder!r}.{method}")  # noqa: B010  (not typed)
    return coroutine
