"""What the factories need to know about a kind of model, and how its rows are saved.

One adapter per ORM (:mod:`._sqlalchemy`, :mod:`._peewee`), and :class:`PlainAdapter`
for classes of neither (built in memory only). The core (:mod:`._core`) does no
I/O: it plans, and hands each batch of models to save to a :class:`Store`.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["Adapter", "AsyncStore", "Link", "Plan", "Store", "adapter_for", "drive"]


@dataclass(frozen=True)
class Link:
    """How a model points at another: the attribute set, and what it takes.

    ``by_key``: the attribute is a column and takes the other row's primary key
    (else the instance). ``saved_first``: the other row must be saved before this
    model is built (a column, or any peewee foreign key). ``collection``: the
    attribute is the *other* model's list of this model's rows (a one-to-many or
    many-to-many relationship seen from the parent), which children are appended to.
    """

    key: str
    by_key: bool = False
    saved_first: bool = False
    collection: bool = False
    alias: str | None = None
    """Another name the user may give this link by (a foreign-key column a
    relationship covers: naming the column links through the relationship)."""


class Adapter:
    """The questions the core asks about a model class; one subclass per ORM."""

    def describe_attributes(self, model: type[Any]) -> list[str]:
        """The attribute names an error lists as valid."""
        return []

    def has_attribute(self, model: type[Any], key: str) -> bool:
        """Whether ``model(**{key: ...})`` sets something the model has."""
        return True

    def link_for_key(self, model: type[Any], key: str) -> Link:
        """The link for a related model set under ``key`` (by a factory value)."""
        return Link(key)

    def links_to(self, model: type[Any], target: type[Any]) -> list[Link]:
        """``model``'s own links to ``target`` (relationships first, then columns)."""
        return []

    def names_of(self, model: type[Any], link: Link) -> set[str]:
        """Every attribute name that sets what ``link`` sets: its key, and the
        foreign-key columns a relationship covers (``author`` and ``author_id``)."""
        return {link.key}

    def collections_to(self, model: type[Any], target: type[Any]) -> list[Link]:
        """``model``'s lists of ``target`` rows (relationships seen from the parent)."""
        return []

    def construct(self, model: type[Any], attrs: dict[str, Any]) -> Any:
        return model(**attrs)

    def primary_key(self, instance: Any) -> Any:
        """The saved row's primary key, or None when it has none yet."""
        return None

    def add_to_collection(self, parent: Any, key: str, children: Sequence[Any]) -> None:
        getattr(parent, key).extend(children)

    def store_for(self, model: type[Any], session: Any, what: str) -> Store | AsyncStore:
        """Where ``create`` saves ``model``'s rows, given the caller's ``session``."""
        raise ConfigurationError(
            f"{what}: {model.__name__} is neither a SQLAlchemy mapped class nor a peewee "
            "model, so there is nothing to save it through. make() builds it in memory."
        )


Plan = Generator[list[Any], None, Any]
"""A build in progress: it yields each batch of models to save now, and returns its result."""


class Store:
    """Saves batches of built models, synchronously."""

    session: Any
    """What after-create hooks receive (the caller's session or database)."""

    def flush(self, instances: list[Any]) -> None:
        raise NotImplementedError


class AsyncStore:
    """Saves batches of built models through an event loop."""

    session: Any

    async def run(self, plan: Plan) -> Any:
        """Carry ``plan`` out, saving each batch it yields; its result."""
        raise NotImplementedError


def drive(plan: Plan, store: Store) -> Any:
    """Carry ``plan`` out through a sync store; its result."""
    try:
        batch = next(plan)
        while True:
            store.flush(batch)
            batch = plan.send(None)
    except StopIteration as done:
        return done.value


def adapter_for(model: type[Any]) -> Adapter:
    """The adapter of ``model``'s ORM: peewee's when it is a peewee model, SQLAlchemy's
    when it is mapped, else the plain one (in-memory builds only)."""
    peewee = sys.modules.get("peewee")
    if peewee is not None and isinstance(model, type) and issubclass(model, peewee.Model):
        from ._peewee import PEEWEE

        return PEEWEE
    from ._sqlalchemy import SQLALCHEMY, is_mapped

    if is_mapped(model):
        return SQLALCHEMY
    return _PLAIN


_PLAIN = Adapter()
