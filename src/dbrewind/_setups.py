"""Setups, as every entry point accepts them: a callable, a list of them, or a dict by alias."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from sqlalchemy.engine import Connection

from .exceptions import ConfigurationError

__all__ = ["SetupCallable", "as_steps"]

SetupCallable = Callable[[Connection], object]
"""A schema setup: receives a Connection inside a transaction that is committed after it."""


def as_steps(
    value: object, *, alias: str | None = None, what: str = "setup"
) -> list[SetupCallable]:
    """``value`` as a list of setup steps.

    ``None`` is no step; a callable is one; a list or tuple of callables is
    several, in order; with ``alias``, a mapping picks the entry for that
    database alias (``{"default": ..., "reports": ...}``). ``what`` names the
    setting in the error for anything else.
    """
    if value is None:
        return []
    if isinstance(value, Mapping):
        if alias is None:
            raise ConfigurationError(
                f"{what} is a dict {value!r}, which only the pytest plugin accepts (one entry "
                "per database alias). Give a callable that receives a Connection, or a list."
            )
        return as_steps(value.get(alias), alias=alias, what=what)
    if callable(value):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        steps = list(value)
        if all(callable(step) for step in steps):
            return steps
    shapes = "a callable that receives a Connection (such as metadata.create_all), a list of them"
    if alias is not None:
        shapes += ", or a dict of them by database alias (e.g. {'default': setup})"
    raise ConfigurationError(f"{what} is {value!r}; give {shapes}.")
