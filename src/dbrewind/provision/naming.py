"""Names of the databases the lifecycle derives from a test database: templates and clones.

From a configured test database ``app_test`` (SQLite: ``dir/app_test.db``):

* the template ``app_test_tmpl_<fingerprint8>`` holds the setup's result;
* this process works on a clone: ``app_test``, or ``app_test_gw0`` for the
  pytest-xdist worker ``gw0``; when another live run holds that one, the next
  free *slot*: ``app_test_r1``, ``app_test_gw0_r1``, ... A slot a dead run left
  is simply taken (and checked) by the next run that needs one.

Every name is shortened with a hash to fit the database's name limit, and a
SQLite sibling is a file in the same directory with the same suffix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from .._url import DatabaseURL
from ..dialects import get_dialect

__all__ = [
    "MAX_SLOTS",
    "clone_candidates",
    "fit",
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
