"""Templates and clone slots: the part of the lifecycle that works on a server's databases.

A clone-mode :class:`~dbrewind.provision.target.Target` gets its setup built
once into a template ``<name>_tmpl_<fingerprint8>`` (:func:`ensure_template`,
under the server-wide lock of :func:`build_lock`), the newest
:data:`TEMPLATES_KEPT` templates kept (:func:`drop_stale_templates`), and a
clone slot no other live run leases (:func:`choose_clone`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from .._url import DatabaseURL
from ..dialects import Lock, get_dialect
from ..exceptions import DbrewindError, LeaseError
from ..rewinder import Rewinder
from .fingerprint import schema_digest, tracking_version
from .naming import MAX_SLOTS, clone_candidates, stem, template_prefix
from .setup_files import changed, digests, files_run
from .target import (
    BUILT,
    CLEAN,
    COMPLETE,
    FINGERPRINT,
    ORIGIN,
    SCHEMA,
    SETUP_FILES,
    VERSION,
    Target,
)

__all__ = [
    "BUILD_WAIT",
    "TEMPLATES_KEPT",
    "build_lock",
    "choose_clone",
    "drop_stale_templates",
    "ensure_template",
]

logger = logging.getLogger("dbrewind")

BUILD_WAIT = 900.0
"""Seconds a process waits for another one building the same template."""
TEMPLATES_KEPT = 3
"""Templates of one test database kept on its server (the newest, by build time)."""


@contextlib.contextmanager
def build_lock(base: DatabaseURL) -> Iterator[None]:
    """Hold the server-wide lock under which the templates of ``base`` are built."""
    dialect = get_dialect(base.backend)
    started = time.monotonic()
    lock = dialect.acquire_lock(base, "build", wait=BUILD_WAIT)
    if lock is None:
        raise LeaseError(
            f"Waited {time.monotonic() - started:.0f} s for another run to finish building "
            f"the template of {base.display()} (held by "
            f"{dialect.lock_holder(base, 'build') or 'an unknown session'}). If no run is "
            "building it, end the session that holds the lock."
        )
    try:
        yield
    finally:
        lock.release()


def ensure_template(
    target: Target, template: DatabaseURL, fingerprint: str, notes: list[str]
) -> bool:
    """Reuse ``template`` when it is complete and current; else build it from the target's
    setup (and drop stale templates). True when it was built; what a user should hear of
    (a half-built template found) is appended to ``notes``. Call under :func:`build_lock`."""
    backend = target.url.backend
    root = target.fingerprint_root
    rewinder = Rewinder(template, allow=True, lock_timeout=target.lock_timeout)
    try:
        if not target.rebuild and rewinder.exists():
            try:
                with rewinder.connection() as conn:
                    state = rewinder.dialect.installation(conn).state
            except DbrewindError:
                state = {}
            edited = changed(state.get(SETUP_FILES), root) if root is not None else []
            if edited:
                shown = ", ".join(edited[:5]) + (
                    f" and {len(edited) - 5} more" if edited[5:] else ""
                )
                notes.append(
                    f"the template {template.database!r} was built again: the setup's code "
                    f"changed in {shown}"
                )
            elif (
                state.get(COMPLETE) == "1"
                and state.get(FINGERPRINT) == fingerprint
                and state.get(VERSION) == tracking_version(backend)
            ):
                return False
            if state.get(COMPLETE) != "1":
                notes.append(
                    f"the template {template.database!r} was left half-built by a run "
                    "that ended while building it (killed or crashed); dbrewind built it again"
                )
        try:
            with contextlib.ExitStack() as stack:
                ran = stack.enter_context(files_run(root)) if root is not None else []
                schema = rewinder.prepare(list(target.setups or ()), recreate=True)
        except BaseException:
            # a failed build leaves nothing behind: the next run builds afresh
            with contextlib.suppress(DbrewindError):
                rewinder.drop()
            raise
        with rewinder.connection() as conn:
            rewinder.dialect.write_state(
                conn,
                {
                    VERSION: tracking_version(backend),
                    SCHEMA: schema_digest(schema),
                    FINGERPRINT: fingerprint,
                    ORIGIN: template.database,
                    COMPLETE: "1",
                    BUILT: f"{time.time():.3f}",
                    CLEAN: "1",
                    SETUP_FILES: digests(ran, root) if root is not None else "{}",
                },
            )
    finally:
        rewinder.close()
    drop_stale_templates(target.url, template.database)
    return True


def drop_stale_templates(base: DatabaseURL, current: str) -> None:
    """Keep the newest :data:`TEMPLATES_KEPT` templates of ``base`` (``current`` among
    them); drop the rest. A template another run is cloning from is kept."""
    dialect = get_dialect(base.backend)
    try:
        names = dialect.list_databases(base, template_prefix(stem(base)))
    except DbrewindError:
        return
    built: list[tuple[float, str]] = []
    for name in names:
        if name == current:
            continue
        with Rewinder(base.with_database(name), allow=True) as other:
            try:
                with other.connection() as conn:
                    state = other.dialect.installation(conn).state
                built.append((float(state.get(BUILT, "0")), name))
            except (DbrewindError, ValueError):
                built.append((0.0, name))
            except Exception:  # not ours to judge: leave it
                continue
    for _when, name in sorted(built, reverse=True)[TEMPLATES_KEPT - 1 :]:
        with Rewinder(base.with_database(name), allow=True) as stale:
            try:
                stale.drop()
            except Exception as exc:  # another checkout may be cloning from it
                logger.debug("dbrewind: kept stale template %s: %s", name, exc)


def choose_clone(target: Target) -> tuple[DatabaseURL, Lock, str | None]:
    """The first clone slot no other live run leases, leased now; and what to say of it."""
    base = target.url
    dialect = get_dialect(base.backend)
    holders: list[str] = []
    for candidate in clone_candidates(base, target.worker, dialect.name_limit):
        lease = dialect.acquire_lock(candidate, "lease", wait=0)
        if lease is not None:
            break
        holders.append(f"{candidate.database} ({dialect.lock_holder(candidate, 'lease')})")
    else:
        raise LeaseError(
            f"All {MAX_SLOTS} clones of {base.display()} are in use by other runs: "
            f"{'; '.join(holders[:3])}... Wait for them to finish, or end the runs that hang."
        )
    note = None
    if holders:
        note = (
            f"{holders[0]} is in use by another run, so this run works on its own clone "
            f"{candidate.database!r}"
        )
    return candidate, lease, note
