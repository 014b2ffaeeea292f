"""Skipping by database feature: :func:`skipUnlessDBFeature` and :func:`skipIfDBFeature`,
for a test method or a whole :mod:`dbrewind.unittest` test case class (decided when
unittest first asks, once the class's database is known).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import unittest
from collections.abc import Callable
from typing import Any, TypeVar

from ..dialects import Capabilities
from ..exceptions import ConfigurationError
from ._base import _DatabaseMixin

__all__ = [
    "_SkipCondition",
    "_check_features",
    "_feature_skip",
    "skipIfDBFeature",
    "skipUnlessDBFeature",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_FEATURES = tuple(f.name for f in dataclasses.fields(Capabilities))


def _check_features(decorator: str, features: tuple[str, ...]) -> None:
    if not features:
        raise ConfigurationError(f"{decorator}() needs at least one feature name: {_FEATURES}.")
    unknown = [name for name in features if name not in _FEATURES]
    if unknown:
        raise ConfigurationError(
            f"{decorator}() got unknown database feature(s) {', '.join(map(repr, unknown))}. "
            f"Known features (dbrewind.Capabilities): {', '.join(_FEATURES)}."
        )


def _feature_skip(
    decorator: str,
    features: tuple[str, ...],
    skip_when: Callable[[Capabilities], bool],
    reason: str,
) -> Callable[[_F], _F]:
    _check_features(decorator, features)

    def condition(cls: type) -> bool:
        if not (isinstance(cls, type) and issubclass(cls, _DatabaseMixin)):
            raise ConfigurationError(
                f"{decorator}() applies to dbrewind.unittest test cases (TestCase, "
                f"TransactionTestCase, AsyncTestCase), not {cls!r}."
            )
        return skip_when(cls.database_capabilities())

    def decorate(target: _F) -> _F:
        if isinstance(target, type):
            previous = target.__dict__.get("__unittest_skip__", False)
            target.__unittest_skip__ = _SkipCondition(previous, condition, reason)  # type: ignore[attr-defined]
            return target
        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                if condition(type(self)):
                    raise unittest.SkipTest(reason)
                return await target(self, *args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(target)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if condition(type(self)):
                raise unittest.SkipTest(reason)
            return target(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


class _SkipCondition:
    """A class's ``__unittest_skip__``, decided when unittest first asks (the database is known)."""

    def __init__(self, previous: Any, condition: Callable[[type], bool], reason: str) -> None:
        self.previous = previous
        self.condition = condition
        self.reason = reason

    def __get__(self, instance: object, owner: type) -> bool:
        if isinstance(self.previous, _SkipCondition):
            if self.previous.__get__(instance, owner):
                return True
        elif self.previous:
            return True
        for base in owner.__mro__[1:]:
            inherited = base.__dict__.get("__unittest_skip__", False)
            if inherited is self:
                break  # the rest was checked where this condition was attached
            if isinstance(inherited, _SkipCondition):
                if inherited.__get__(instance, owner):
                    return True
            elif inherited:
                return True
        if self.condition(owner):
            owner.__unittest_skip_why__ = self.reason  # type: ignore[attr-defined]
            return True
        return False


def skipUnlessDBFeature(*features: str) -> Callable[[_F], _F]:
    """Skip the test (or every test of the class) unless the database has all ``features``.

    Feature names are the fields of :class:`dbrewind.Capabilities`
    (``transactional_ddl``, ``savepoints``, ``statement_triggers``, ...); an
    unknown name raises :class:`dbrewind.ConfigurationError` at once.
    """
    return _feature_skip(
        "skipUnlessDBFeature",
        features,
        lambda caps: not all(getattr(caps, name) for name in features),
        f"Database doesn't support feature(s): {', '.join(features)}",
    )


def skipIfDBFeature(*features: str) -> Callable[[_F], _F]:
    """Skip the test (or every test of the class) if the database has any of ``features``."""
    return _feature_skip(
        "skipIfDBFeature",
        features,
        lambda caps: any(getattr(caps, name) for name in features),
        f"Database has feature(s): {', '.join(features)}",
    )
