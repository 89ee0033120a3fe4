"""The store on both backends: ``pytest --db postgresql`` really runs on PostgreSQL, and the
queue's claim never leases a task twice on either."""

from __future__ import annotations

from pathlib import Path

import pytest

from curator.workspace import Workspace
from tests.api_fixtures import make_settings, seed_frames


def test_the_suite_runs_on_the_backend_it_was_asked_for(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    workspace = Workspace(make_settings(tmp_path))
    try:
        assert workspace.db.engine.dialect.name == request.config.getoption("--db")
    finally:
        workspace.close()


def test_a_shared_sweep_keeps_what_another_server_may_be_writing(tmp_path: Path) -> None:
    """Where servers share the database and blobs, the start-up sweep removes this host's dead
    processes' staging folders and whatever has been idle an hour, and keeps the rest."""
    import os
    import subprocess
    import sys
    import time

    from curator.jobs.sweep import STAGING_IDLE_SECONDS, sweep_orphans
    from curator.store.blobs import host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    workspace = Workspace(make_settings(tmp_path))
    try:
        root = workspace.blobs.root
        old = time.time() - STAGING_IDLE_SECONDS - 60
        paths = {
            "dead here": root / ".staging" / f"ingest-{dead.pid}.{host_tag()}-abc",
            "live elsewhere": root / ".staging" / f"ingest-{dead.pid}.otherhost-def",
            "idle elsewhere": root / ".staging" / f"ingest-{dead.pid}.otherhost-ghi",
            "ours": root / ".staging" / f"ingest-{os.getpid()}.{host_tag()}-jkl",
        }
        for path in paths.values():
            path.mkdir(parents=True)
        os.utime(paths["idle elsewhere"], (old, old))
        project_id, _ = seed_frames(workspace, "swept", 1)
        uploads = root / "projects" / str(project_id) / "uploads"
        uploads.mkdir(parents=True)
        recent, stale = uploads / "a.upload", uploads / "b.upload"
        recent.write_bytes(b"x")
        stale.write_bytes(b"y")
        os.utime(stale, (old, old))
        removed = set(sweep_orphans(workspace, shared=True))
        assert not paths["dead here"].exists() and not paths["idle elsewhere"].exists()
        assert paths["live elsewhere"].exists() and paths["ours"].exists()
        # neither upload is named by a job; the recent one may still be arriving at another server
        assert recent.exists() and not stale.exists()
        assert f"projects/{project_id}/uploads/b.upload" in removed
        orphan = root / "projects" / "99999"  # a project folder without rows, changed lately: kept
        orphan.mkdir()
        sweep_orphans(workspace, shared=True)
        assert orphan.exists()
    finally:
        workspace.close()
