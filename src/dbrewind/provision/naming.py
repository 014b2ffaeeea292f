"""Names of the databases the lifecycle derives from a test database: templates and clones.

From a configured test database ``app_test`` (SQLite: ``dir/app_test.db``):

* the template ``app_test_tmpl_<fingerprint8>`` holds the setup's result;
* this process works on a clone: ``app_test``, or ``app_test_gw0`` for the
  pytest-xdist worker ``gw0``; when another live run holds that one, the next
  free *slot*: ``app_test_r1``, ``app_test_gw0_r1``, ... A slot a dead run left
  is simply taken (and checked) by the next run that needs one;
* ``dbrewind bench`` measures on a scratch database ``app_test_bench_<token8>``
  that holds the schema of ``app_test`` and nothing else, dropped when it ends.

:func:`derived_kind` tells which of these a name is (``dbrewind clean``).

Every name is shortened with a hash to fit the database's name limit, and a
SQLite sibling is a file in the same directory with the same suffix.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Literal

from .._url import DatabaseURL
from ..dialects import get_dialect

__all__ = [
    "MAX_SLOTS",
    "DerivedKind",
    "clone_candidates",
    "derived_kind",
    "fit",
    "scratch_name",
    "sibling",
    "stem",
    "template_name",
    "template_prefix",
]

MAX_SLOTS = 32
"""Clones of one test database that runs may use at once (slots ``0 .. MAX_SLOTS - 1``)."""


def stem(url: DatabaseURL) -> str:
    """The database's base name: the name, or a SQLite file's name without its suffix."""
    return get_dialect(url.backend).base_name(url)


def sibling(url: DatabaseURL, name: str) -> DatabaseURL:
    """The database called ``name`` beside ``url``'s: same server, or same directory."""
    return get_dialect(url.backend).sibling(url, name)


def fit(base: str, suffix: str, limit: int) -> str:
    """``base + suffix``, with ``base`` cut and hashed when the whole exceeds ``limit``."""
    if len(base) + len(suffix) <= limit:
        return base + suffix
    digest = hashlib.sha1(base.encode()).hexdigest()[:6]
    room = limit - len(suffix) - len(digest) - 1
    return f"{base[:room]}_{digest}{suffix}"


def template_prefix(name: str) -> str:
    """What every template name of the test database ``name`` starts with."""
    return f"{name}_tmpl_"


def template_name(name: str, fingerprint: str, limit: int = 63) -> str:
    """``<name>_tmpl_<fingerprint8>`` (``app_test_tmpl_0123abcd``), fitted to ``limit``."""
    return fit(name, f"_tmpl_{fingerprint[:8]}", limit)


def clone_candidates(
    url: DatabaseURL, worker: str | None, limit: int = 63
) -> Iterator[DatabaseURL]:
    """The databases this process may work on, in order: slot 0, then the run slots.

    ``app_test`` / ``app_test_gw0`` first, then ``app_test_r1`` / ``app_test_gw0_r1`` and
    so on up to :data:`MAX_SLOTS`.
    """
    base = stem(url)
    own = base if worker is None else fit(base, f"_{worker}", limit)
    for slot in range(MAX_SLOTS):
        name = own if slot == 0 else fit(own, f"_r{slot}", limit)
        yield url if name == base else sibling(url, name)


def scratch_name(name: str, token: str, limit: int = 63) -> str:
    """``<name>_bench_<token8>``: the scratch database ``dbrewind bench`` measures on."""
    return fit(name, f"_bench_{token[:8]}", limit)


DerivedKind = Literal["template", "clone", "scratch"]
"""What a database derived from a test database is (see the module docstring)."""

_TEMPLATE_SUFFIX = re.compile(r"_tmpl_[0-9a-f]{8}\Z")
_SCRATCH_SUFFIX = re.compile(r"_bench_[0-9a-f]{8}\Z")
_CLONE_SUFFIX = re.compile(r"(?P<worker>_gw\d+)?(?P<slot>_r(?P<n>\d+))?\Z")
_WORKERS_TRIED = 256
"""pytest-xdist workers ``gw0 ..`` tried for a run slot's name whose worker part a long
base name's hash hid."""


def derived_kind(name: str, other: str, limit: int = 63) -> DerivedKind | None:
    """Whether ``other`` is a name the lifecycle derives from the test database ``name``:
    one of its templates, clones (a worker's, a run slot's) or bench scratch databases;
    None for any other name (``name`` itself included)."""
    for kind, pattern in (("template", _TEMPLATE_SUFFIX), ("scratch", _SCRATCH_SUFFIX)):
        found = pattern.search(other)
        if found is not None and fit(name, found.group(), limit) == other:
            return kind  # type: ignore[return-value]
    found = _CLONE_SUFFIX.search(other)
    if found is None or not found.group():
        return None
    worker, slot = found.group("worker"), found.group("slot")
    if slot is not None and not 0 < int(found.group("n")) < MAX_SLOTS:
        return None
    owners = [fit(name, worker, limit) if worker else name]
    if slot is not None and worker is None:  # a long name's hash may hide the worker
        owners += [fit(name, f"_gw{n}", limit) for n in range(_WORKERS_TRIED)]
    for own in owners:
        if (fit(own, slot, limit) if slot else own) == other:
            return "clone"
    return None
