"""SQL text as dbrewind reads it: one script splitter and one statement classifier.

Both take a :class:`~dbrewind.dialects._syntax.SqlSyntax`, the facts of one
database's SQL; nothing here knows a database by name.
"""

from __future__ import annotations

from .classify import (
    Control,
    autocommit_setting,
    body_start,
    commits_implicitly,
    is_read,
    may_commit_unseen,
    transaction_control,
)
from .split import SqlSplitError, Statement, split

__all__ = [
    "Control",
    "SqlSplitError",
    "Statement",
    "autocommit_setting",
    "body_start",
    "commits_implicitly",
    "is_read",
    "may_commit_unseen",
    "split",
    "transaction_control",
]
