"""The one test-database lifecycle, used by every entry point.

The pytest plugin, :mod:`dbrewind.unittest`, :mod:`dbrewind.peewee`,
:mod:`dbrewind.peewee_async`, ``clean_db_urls`` suites and the CLI all get
their databases here; none keeps a registry of its own. See
:mod:`.lifecycle` for the modes (clone, in place, adopt), leases, checks
and baseline layers; :mod:`.registry` for the process's databases;
:mod:`.templates` for building templates and choosing clone slots;
:mod:`.target` for what an entry point asks for; :mod:`.naming` for template
and clone names;
:mod:`.fingerprint` for what decides a template is still right. The one
engine factory and the one reading of setups (``dbrewind.dialects.engines``,
``dbrewind._setups``) sit below the Rewinder, which uses them too.
"""

from __future__ import annotations

from .._setups import SetupCallable, as_steps
from ..dialects.engines import make_async_engine, make_engine
from .lifecycle import Database
from .registry import acquire, databases, release_all, release_reservations, reserve
from .target import Target, identity

__all__ = [
    "Database",
    "SetupCallable",
    "Target",
    "acquire",
    "as_steps",
    "databases",
    "identity",
    "make_async_engine",
    "make_engine",
    "release_all",
    "release_reservations",
    "reserve",
]
