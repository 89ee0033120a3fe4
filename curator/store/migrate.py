"""Schema migrations: bring a database to the schema this code expects, in place, with no row lost.

The history lives in :mod:`curator.store.migrations` (Alembic revisions; ``0001`` is the schema of
the first release). :func:`upgrade` takes a database at any point of it to the newest revision:

* an empty database gets the newest schema directly (``create_all`` of the models, recorded as the
  newest revision: Alembic's recipe for a new database; a test replays every revision on an empty
  database and checks that it gives the same schema);
* a database made before migrations existed (curator's tables but no ``alembic_version``) first gets
  the columns added to the first release's tables since (:data:`LEGACY_COLUMNS`), is then recorded
  as ``0001`` and upgraded from there;
* a database already at the newest revision is left alone (one cheap query).

Two processes starting on one database at once must not both migrate it: on PostgreSQL the upgrade
runs in one transaction holding an advisory lock (PostgreSQL's DDL is transactional, so a failed
migration leaves nothing half done); on SQLite a lock file beside the database serialises them.
``curator db upgrade`` runs it by hand; :class:`curator.store.db.Database` runs it at start-up when
the ``auto_migrate`` setting is on (the default; turn it off where several replicas of different
versions share one PostgreSQL database, and run ``curator db upgrade`` as a deploy step).
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, inspect, text

#: The revision of the first release's schema.
BASELINE = "0001"
#: Columns added to the first release's tables before migrations existed: ``{table: {column: SQL type}}``.
LEGACY_COLUMNS: dict[str, dict[str, str]] = {
    "jobs": {"owner": "VARCHAR(200)", "heartbeat_at": "FLOAT"},
    "tasks": {"review_note": "TEXT"},
}
#: Any key of PostgreSQL's advisory locks, the same in every process ("curator" in ASCII).
PG_LOCK_KEY = 0x63757261746F72
#: One migration at a time within a process too (SQLite's file lock is per process).
_PROCESS_LOCK = threading.Lock()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDateError(RuntimeError):
    """The database's schema is older than this code's, and it was not to be upgraded here."""


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade` did: the revision before (``None``: empty or made before migrations),
    the revision after, whether the database predates migrations, and the columns that added."""

    before: str | None
    after: str
    legacy: bool
    added_columns: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything was migrated."""
        return self.before != self.after


def _config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head() -> str:
    """The newest revision."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return str(found)


def current(connection: Connection) -> str | None:
    """The database's revision, or None (empty, or made before migrations)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def revision_of(engine: Engine) -> str | None:
    """The revision of the database behind ``engine`` (see :func:`current`)."""
    with engine.connect() as conn:
        return current(conn)


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    """A lock file beside a SQLite database; nothing for an in-memory one."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _add_legacy_columns(connection: Connection) -> list[str]:
    """The :data:`LEGACY_COLUMNS` a database made before migrations lacks."""
    added = []
    for table, columns in LEGACY_COLUMNS.items():
        present = {c["name"] for c in inspect(connection).get_columns(table)}
        for column, sql_type in columns.items():
            if column not in present:
                connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
                added.append(f"{table}.{column}")
    return added


def upgrade(engine: Engine, *, allowed: bool = True, replay: bool = False) -> UpgradeReport:
    """Bring the database to :func:`head` (see the module docstring).

    Args:
        engine: The database.
        allowed: When False, a database behind the newest revision is not upgraded:
            :class:`SchemaOutOfDateError` says to run ``curator db upgrade`` (an empty one is still
            created).
        replay: Build an empty database by running every revision instead of ``create_all``.

    Returns:
        What was done.

    Raises:
        SchemaOutOfDateError: If the database is behind and ``allowed`` is False, or newer than this code.
    """
    target = head()
    with engine.connect() as conn:
        if current(conn) == target:  # the common case: one query, no lock
            return UpgradeReport(target, target, False)
    lock = _sqlite_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    with _PROCESS_LOCK, lock, engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        return _upgrade_locked(conn, target, allowed, replay)


def _upgrade_locked(conn: Connection, target: str, allowed: bool, replay: bool) -> UpgradeReport:
    """:func:`upgrade` once the lock is held: decide what the database is, then migrate it."""
    from alembic import command
    from alembic.script import ScriptDirectory

    before = current(conn)
    if before == target:  # another process migrated it while this one waited
        return UpgradeReport(before, target, False)
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if before is not None and before not in known:
        raise SchemaOutOfDateError(
            f"the database is at schema revision {before}, which this version of curator does not know "
            f"(its newest is {target}): it was upgraded by a newer curator"
        )
    legacy = before is None and "projects" in inspect(conn).get_table_names()
    if not allowed and (legacy or before is not None):
        raise SchemaOutOfDateError(
            f"the database's schema is at revision {before or 'pre-' + BASELINE}, this code needs {target}: "
            "run `curator db upgrade` (the auto_migrate setting is off)"
        )
    config = _config(conn)
    if before is None and not legacy and not replay:
        from curator.store.models import Base

        Base.metadata.create_all(conn)
        command.stamp(config, "head")
        return UpgradeReport(None, target, False)
    added: list[str] = []
    if legacy:
        added = _add_legacy_columns(conn)
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")
    return UpgradeReport(before, target, legacy, tuple(added))
