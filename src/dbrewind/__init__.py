"""dbrewind: every test gets a database in a known state, by the fastest correct means.

The public names live here; see the README for the strategies and the pytest plugin.
"""

from __future__ import annotations

from ._url import DatabaseURL, parse_url
from .dialects import Capabilities, ForeignKey, RewindResult, SchemaInfo, Table
from .exceptions import (
    ConfigurationError,
    DataLoadError,
    DbrewindError,
    DriverNotInstalledError,
    LeakError,
    LockTimeoutError,
    NotPreparedError,
    SandboxBrokenError,
    SandboxError,
    SchemaChangedError,
    UnsafeDatabaseError,
    VerificationError,
)
from .rewinder import Rewinder

__version__ = "0.1.0"

__all__ = [
    "Capabilities",
    "ConfigurationError",
    "DataLoadError",
    "DatabaseURL",
    "DbrewindError",
    "DriverNotInstalledError",
    "ForeignKey",
    "LeakError",
    "LockTimeoutError",
    "NotPreparedError",
    "RewindResult",
    "Rewinder",
    "SandboxBrokenError",
    "SandboxError",
    "SchemaChangedError",
    "SchemaInfo",
    "Table",
    "UnsafeDatabaseError",
    "VerificationError",
    "__version__",
    "parse_url",
]
