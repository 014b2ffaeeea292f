"""Model factories: readable test data for SQLAlchemy and peewee models, sync and async.

::

    from dbrewind.factories import ModelFactory, lazy

    class UserFactory(ModelFactory[User]):
        __model__ = User

        @classmethod
        def defaults(cls) -> dict[str, Any]:
            seq = cls._next_seq()
            return {
                "name": f"User {seq}",
                "email": lazy(lambda a: f"{a.name.lower().replace(' ', '')}@test.invalid"),
            }

        @classmethod
        def state_admin(cls) -> dict[str, Any]:
            return {"name": "Admin", "is_admin": True}

    class PostFactory(ModelFactory[Post]):
        __model__ = Post

        @classmethod
        def defaults(cls) -> dict[str, Any]:
            return {"title": "Hello", "author": UserFactory}   # each post its own author

    user = UserFactory.make()                                 # in memory only
    admin = UserFactory.state("admin").create(session=session)
    users = UserFactory.create_many(5, session=session)      # one flush
    users = await UserFactory.create_many(5, session=async_session)
    user = UserFactory.create()                               # the running test's session
    posts = PostFactory.for_(admin).create_many(3)            # three posts of one author
    posts = PostFactory.for_(UserFactory.state("admin")).create_many(3)  # one new admin
    writer = UserFactory.has(PostFactory, 3).create()         # a user with three posts
    flagged = UserFactory.after_creating(lambda user, session: audit(user)).create()

**Attributes** are merged in this order: :meth:`ModelFactory.defaults`, each
chosen state in the order given (:meth:`~ModelFactory.state`, chainable, several
at once), a parent chosen with :meth:`~FactoryBuilder.for_`, the keyword
overrides. Then:

* a value that is a factory class or a :class:`FactoryBuilder` is a related model,
  one per model: built (``make``) or created first (``create``) and assigned; on a
  relationship the instance is assigned, on a foreign-key column its primary key;
* a :func:`lazy` value (a :class:`Lazy`) is computed from the other attributes,
  resolved (related models are instances by then); lazy values may read each
  other, in any order but a cycle;
* every name must be an attribute of the model: an unknown one is an error naming
  it, where it was set (``defaults()``, a state, the overrides) and the model's
  attributes.

**Saving.** ``create``/``create_many`` take ``session=``:

* a SQLAlchemy ``Session`` (or a ``scoped_session``): the models are added and
  flushed (ids assigned, rows written in the session's transaction; committing is
  the test's decision);
  ``create`` returns the model, ``create_many`` a :class:`CreatedList` (a list
  that is awaitable too, so ``await UserFactory.create_many(5, session=session)``
  works with either kind of session);
* an ``AsyncSession``: the same through ``run_sync``; both return awaitables;
* nothing: the running test's session under the pytest plugin (``db_session``,
  or ``async_db_session`` in an async test that asked for it; then an
  awaitable). Outside a test, :class:`~dbrewind.exceptions.ConfigurationError`
  says what to pass;
* for a peewee model, a peewee database, or nothing: the model's own database.
  A peewee-async database (``AioDatabase``) gives awaitables.

``acreate``/``acreate_many`` are the async-only twins (an ``AsyncSession`` or a
peewee-async database). ``create_many(n)`` saves in as few batches as the links
allow, not one model at a time: one flush for SQLAlchemy unless a foreign-key
column needs its row's key first, one batch a table for peewee (whose foreign keys
take saved rows). ``PostFactory.create_many(100)`` with an author each hands over
the 100 authors and the 100 posts together. SQLAlchemy's ORM sends a batch as
multi-row ``INSERT .. RETURNING`` statements on PostgreSQL and MariaDB 10.5+; on
SQLite (``RETURNING``, but no sentinel to match its rows to the objects; in-process,
no round trips; a model with a sentinel column, ``_sentinel: Mapped[int] =
orm_insert_sentinel()``, is batched there too) and MySQL (no ``RETURNING``) it
sends one ``INSERT`` a row. peewee:
one multi-row ``INSERT .. RETURNING`` a table on PostgreSQL, SQLite and MariaDB
10.5+, one ``INSERT`` a row on MySQL.

**Related models.** ``for_(parent, relation=None)`` makes models that belong to
``parent``: an instance, or a factory/builder of which one is made per call and
shared; linked through the relationship to the parent's class or the foreign-key
column. ``has(children, count=1, relation=None)`` makes ``count`` children with
each model, linked through their relationship or foreign key to it, or through
its one-to-many or many-to-many relationship. ``relation`` names the attribute
when there are several.

**Hooks.** :meth:`ModelFactory.after_create` (a classmethod to override) and
callbacks added with :meth:`~FactoryBuilder.after_creating` are called with
``(instance, session)`` for each created model once everything is saved, in the
order the models were made (parents first); one that returns an awaitable is
awaited with an async session and is an error with a sync one.

**Sequences.** :meth:`ModelFactory._next_seq` counts per factory class, one
counter shared by a factory and its subclasses of the same ``__model__`` (as
factory_boy's sequences: ``AdminFactory(UserFactory)`` never makes a second
``user1``); under the pytest plugin every test starts from the counters its
scope left (a test's first user is ``user1``, in any order, on any xdist
worker). :meth:`~ModelFactory.reset_sequence` restarts one.

Builders are immutable: every choosing method returns a new one.
"""

from __future__ import annotations

from ._core import Attributes, CreatedList, FactoryBuilder, Hook, Lazy, ModelFactory, lazy

__all__ = ["Attributes", "CreatedList", "FactoryBuilder", "Hook", "Lazy", "ModelFactory", "lazy"]
