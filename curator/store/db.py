"""Engine and session factory. SQLite gets WAL journaling, foreign keys and a busy timeout.

The schema is made by ``create_all``, which creates missing tables but never alters existing ones;
columns added to existing tables since are listed in :data:`ADDED_COLUMNS` and added at start-up by
:func:`upgrade_schema` (an idempotent ``ALTER TABLE ... ADD COLUMN``; there is no other migration
mechanism).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from curator.config import Settings
from curator.store import models as _models  # noqa: F401  (registers every table on Base.metadata)
from curator.store.models import Base


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) proceed while a job writes; NORMAL sync is durable in WAL mode
    # against process crashes, which is what a kill -9 of the server is.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``; SQLite URLs get the pragmas above and their folder created."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


#: Columns added to tables after their first release: ``{table: {column: SQL type}}`` (all nullable).
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "jobs": {"owner": "VARCHAR(200)", "heartbeat_at": "FLOAT"},
    "tasks": {"review_note": "TEXT"},
}


def upgrade_schema(engine: Engine) -> list[str]:
    """Add the :data:`ADDED_COLUMNS` an older database lacks; safe to run at every start.

    Returns:
        ``table.column`` of each column added.
    """
    added = []
    for table, columns in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspect(engine).get_columns(table)}
        for column, sql_type in columns.items():
            if column in present:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
            except (OperationalError, ProgrammingError):
                # another process starting at the same moment added it first
                if column not in {c["name"] for c in inspect(engine).get_columns(table)}:
                    raise
                continue
            added.append(f"{table}.{column}")
    return added


class Database:
    """The database of one curator home: an engine, a session factory and the schema.

    Args:
        settings: Settings naming the database URL.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        url = settings.resolved_database_url
        if url.startswith("sqlite:///"):
            settings.home.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        upgrade_schema(self.engine)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any exception."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
