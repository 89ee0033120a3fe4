"""Engine and session factory. SQLite gets WAL journaling, foreign keys and a busy timeout;
PostgreSQL (``database_url = postgresql+psycopg://...``) a checked connection pool.

The schema is made and changed by migrations (:mod:`curator.store.migrate`), run at start-up when
the ``auto_migrate`` setting is on and by ``curator db upgrade``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from curator.config import Settings
from curator.store import models as _models  # noqa: F401  (registers every table on Base.metadata)
from curator.store.migrate import upgrade


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
    else:  # a server: connections may drop (a restart), so each is checked before use
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return engine


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
        #: What the start-up migration did (:func:`curator.store.migrate.upgrade`).
        self.migration = upgrade(self.engine, allowed=settings.auto_migrate)
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
