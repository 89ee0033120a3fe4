"""Telling a full disk apart from other failures, wherever it surfaces.

A full disk (or an exhausted quota) shows up as an :class:`OSError` with ``errno`` ``ENOSPC``,
``EDQUOT`` or ``EFBIG`` from a file write, or as SQLite's ``SQLITE_FULL`` ("database or disk is
full") wrapped by SQLAlchemy, possibly chained inside another exception. The API answers it with
507 ``insufficient_storage`` and jobs record it with the same code.
"""

from __future__ import annotations

import errno
import sqlite3

#: ``errno`` values that mean there is no room left to write.
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: Stable code of the error, in API answers and on failed jobs.
INSUFFICIENT_STORAGE = "insufficient_storage"


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE_ERRNOS:
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
    return False


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc``, what it wraps (SQLAlchemy's ``orig``) or what caused it is a full disk."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if _is_full(current):
            return True
        orig = getattr(current, "orig", None)
        stack.extend([orig if isinstance(orig, BaseException) else None, current.__cause__, current.__context__])
    return False


#: What to tell a person about a full disk (never the failed statement: it may hold their data).
OUT_OF_SPACE_MESSAGE = (
    "the server has no space left to store this (disk full or quota exceeded); nothing was stored; "
    "free space on the server and retry"
)
