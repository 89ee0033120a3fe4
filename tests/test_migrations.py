"""Schema migrations (``curator.store.migrate``, ``curator db``): the history builds the models'
schema, a database made by the first release upgrades in place with every row kept, and concurrent
starts migrate once. ``tests/data/release-0.1.0.db`` was made by the first release's code (ingest of
the bundled clip, three human masks, a category, a selection queued and one task leased, a key)."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from curator.cli import app
from curator.config import load_settings
from curator.store.migrate import BASELINE, SchemaOutOfDateError, head, revision_of, upgrade
from curator.workspace import Workspace

RELEASE_DB = Path(__file__).parent / "data" / "release-0.1.0.db"
TABLES = ("projects", "videos", "shots", "frames", "embeddings", "annotations", "categories", "objects",
          "selections", "selection_items", "tasks", "api_keys")  # fmt: skip


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def release_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(RELEASE_DB, home / "curator.db")
    return home


def test_the_history_builds_the_models_schema(tmp_path: Path) -> None:
    """Every revision replayed on an empty database gives exactly the tables the models declare (so
    ``create_all`` of a new database and an upgraded old one agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from curator.store.db import make_engine
    from curator.store.models import Base

    settings = load_settings(None, home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        report = upgrade(engine, replay=True)
        assert report.before is None and report.after == head() and not report.legacy
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        assert upgrade(engine) == type(report)(head(), head(), False)  # at head: nothing to do
    finally:
        engine.dispose()


@pytest.mark.sqlite_only
def test_a_release_database_upgrades_in_place_with_every_row(tmp_path: Path) -> None:
    import curator

    home = release_home(tmp_path)
    before = counts(home / "curator.db")
    with sqlite3.connect(home / "curator.db") as conn:
        masks = conn.execute("SELECT frame_id, object_id, source, rle FROM annotations ORDER BY id").fetchall()
    assert before["frames"] == 20 and before["annotations"] == 3 and before["tasks"] == 4
    with curator.open(home, backbone="classic", device="cpu") as opened:
        assert opened.workspace.db.migration.legacy and opened.workspace.db.migration.after == head()
        project = opened.project("release", create=False)
        assert len(project.frames()) == 20
        queue = project.tasks()  # the leased task's lease has long expired by now
        assert queue["leased"] + queue["expired"] == 1 and queue["total"] == 4
        assert [c["name"] for c in project.categories()] == ["person"]
    assert counts(home / "curator.db") == before
    with sqlite3.connect(home / "curator.db") as conn:
        assert conn.execute("SELECT frame_id, object_id, source, rle FROM annotations ORDER BY id").fetchall() == masks
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head()


@pytest.mark.sqlite_only
def test_an_older_database_gets_the_columns_added_since(tmp_path: Path) -> None:
    home = release_home(tmp_path)
    with sqlite3.connect(home / "curator.db") as conn:
        conn.execute("ALTER TABLE tasks DROP COLUMN review_note")
        conn.execute("ALTER TABLE jobs DROP COLUMN owner")
    engine = create_engine(f"sqlite:///{home / 'curator.db'}")
    try:
        report = upgrade(engine)
    finally:
        engine.dispose()
    assert report.legacy and set(report.added_columns) == {"tasks.review_note", "jobs.owner"}
    assert counts(home / "curator.db")["tasks"] == 4


@pytest.mark.sqlite_only
def test_without_auto_migrate_an_old_database_is_refused_until_db_upgrade(tmp_path: Path) -> None:
    home = release_home(tmp_path)
    with pytest.raises(SchemaOutOfDateError, match="curator db upgrade"):
        Workspace(load_settings(None, home=home, auto_migrate=False))
    runner = CliRunner()
    status = runner.invoke(app, ["db", "status", "--home", str(home)])
    assert status.exit_code == 0 and '"made_before_migrations": true' in status.output, status.output
    done = runner.invoke(app, ["db", "upgrade", "--home", str(home)])
    assert done.exit_code == 0 and "before migrations" in done.output and head() in done.output, done.output
    again = runner.invoke(app, ["db", "upgrade", "--home", str(home)])
    assert again.exit_code == 0 and "already at revision" in again.output
    Workspace(load_settings(None, home=home, auto_migrate=False)).close()  # now it opens


def test_a_database_of_a_newer_curator_is_refused(tmp_path: Path) -> None:
    workspace = Workspace(load_settings(None, home=tmp_path / "home"))
    try:
        with workspace.db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
        assert revision_of(workspace.db.engine) == "f00d"
        with pytest.raises(SchemaOutOfDateError, match="newer curator"):
            upgrade(workspace.db.engine)
        result = CliRunner().invoke(app, ["db", "upgrade", "--home", str(tmp_path / "home")])
        assert result.exit_code == 2 and "newer curator" in result.output
    finally:
        workspace.close()


def _open(home: str, out: Any) -> None:
    workspace = Workspace(load_settings(None, home=home))
    out.put(workspace.db.migration.before)
    workspace.close()


def test_concurrent_starts_migrate_once(tmp_path: Path) -> None:
    """Four processes open one new database at once: one creates it, the others find it made."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [context.Process(target=_open, args=(str(tmp_path / "home"), out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    befores = sorted((out.get(timeout=5) for _ in procs), key=str)
    assert befores.count(None) == 1 and befores.count(head()) == 3, befores
    assert head() >= BASELINE
