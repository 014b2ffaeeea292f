"""dbrewind: every test gets a database in a known state, by the fastest correct means.

The public names live here; see the README for the strategies and the pytest plugin.
They are imported on first use, so ``import dbrewind`` (which pytest does for the
plugin in every run) costs nothing until a database is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .exceptions import (
    AuthenticationError,
    ConfigurationError,
    ConnectionFailedError,
    DatabaseCreationError,
    DatabaseDropError,
    DatabaseNotFoundError,
    DataLoadError,
    DbrewindError,
    DbrewindLeakWarning,
    DbrewindWarning,
    DriverNotInstalledError,
    FixtureShadowedWarning,
    LeakError,
    LeaseError,
    LockTimeoutError,
    NotADatabaseFileError,
    NotPreparedError,
    ProvisionError,
    SafetyNetWarning,
    SandboxBrokenError,
    SandboxError,
    SchemaChangedError,
    ServerUnreachableError,
    SetupError,
    UnsafeDatabaseError,
    VerificationError,
    WrongServerError,
)

if TYPE_CHECKING:
    from ._strategy import Strategy
    from ._url import DatabaseURL, parse_url
    from .dialects import Capabilities, ForeignKey, RewindResult, SchemaInfo, Table
    from .rewinder import Rewinder

__version__ = "0.1.0"

_LAZY = {
    "DatabaseURL": "._url",
    "parse_url": "._url",
    "Capabilities": ".dialects",
    "ForeignKey": ".dialects",
    "RewindResult": ".dialects",
    "SchemaInfo": ".dialects",
    "Table": ".dialects",
    "Rewinder": ".rewinder",
    "Strategy": "._strategy",
}

__all__ = [
    "AuthenticationError",
    "Capabilities",
    "ConfigurationError",
    "ConnectionFailedError",
    "DataLoadError",
    "DatabaseCreationError",
    "DatabaseDropError",
    "DatabaseNotFoundError",
    "DatabaseURL",
    "DbrewindError",
    "DbrewindLeakWarning",
    "DbrewindWarning",
    "DriverNotInstalledError",
    "FixtureShadowedWarning",
    "ForeignKey",
    "LeakError",
    "LeaseError",
    "LockTimeoutError",
    "NotADatabaseFileError",
    "NotPreparedError",
    "ProvisionError",
    "RewindResult",
    "Rewinder",
    "SafetyNetWarning",
    "SandboxBrokenError",
    "SandboxError",
    "SchemaChangedError",
    "SchemaInfo",
    "ServerUnreachableError",
    "SetupError",
    "Strategy",
    "Table",
    "UnsafeDatabaseError",
    "VerificationError",
    "WrongServerError",
    "__version__",
    "parse_url",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dbrewind' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
