"""One module per database, each loaded by name when first needed."""

from __future__ import annotations

import importlib

from .._url import Backend
from .base import (
    Capabilities,
    Dialect,
    ForeignKey,
    Installation,
    Lock,
    LockWait,
    OuterTransaction,
    RewindResult,
    SandboxOps,
    SchemaInfo,
    ServerReport,
    Table,
)

__all__ = [
    "Capabilities",
    "Dialect",
    "ForeignKey",
    "Installation",
    "Lock",
    "LockWait",
    "OuterTransaction",
    "RewindResult",
    "SandboxOps",
    "SchemaInfo",
    "ServerReport",
    "Table",
    "get_dialect",
]

_MODULES: dict[Backend, tuple[str, str]] = {
    "sqlite": ("dbrewind.dialects.sqlite", "SQLiteDialect"),
    "postgresql": ("dbrewind.dialects.postgresql", "PostgreSQLDialect"),
    "mysql": ("dbrewind.dialects.mysql", "MySQLDialect"),
}


def get_dialect(backend: Backend, *, schemas: tuple[str, ...] = ()) -> Dialect:
    """The dialect object for ``backend`` (``sqlite``, ``postgresql`` or ``mysql``)."""
    module_name, class_name = _MODULES[backend]
    cls: type[Dialect] = getattr(importlib.import_module(module_name), class_name)
    return cls(schemas=schemas)
