"""The start-up sweep of files a crash left under the blob folder.

A kill -9 (or a power cut) can leave behind: a partial upload (``projects/<p>/uploads/*.upload``)
that no job references; the staging folder of an ingest (``.staging/<kind>-<pid>-<random>``) whose
process is gone; a video's frame folder renamed into place whose rows were never committed, or the
folder of a project whose rows were deleted; half-written temp files of atomic writes. The runner
that holds the database removes them when it starts (:func:`sweep_orphans`), before it serves.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

from sqlalchemy import select, update

from curator.jobs.owner import pid_alive
from curator.store.blobs import host_tag
from curator.store.models import Job, Project, ServerLease, Video
from curator.workspace import Workspace

log = logging.getLogger(__name__)

#: A staging folder untouched this long is removed even if a process with its pid exists (pid reuse).
STAGING_IDLE_SECONDS = 3600.0
_STAGING_PID = re.compile(r"-(\d+)(?:\.(\w+))?-[^-]+$")
_TEMP_NAMES = (".tmp-*", "*.tmp")


def _idle(path: Path, now: float) -> float:
    """Seconds since ``path`` last changed (infinite if it is gone)."""
    try:
        return now - path.stat().st_mtime
    except OSError:
        return float("inf")


def _staging_in_use(entry: Path, now: float) -> bool:
    """Whether a staging folder may belong to a live writer: it changed lately, and its pid runs
    (only checked for this host's folders: another machine's pids mean nothing here)."""
    match = _STAGING_PID.search(entry.name)
    if match is None:  # from before staging names carried a pid
        return False
    if _idle(entry, now) >= STAGING_IDLE_SECONDS:
        return False
    if match.group(2) is not None and match.group(2) != host_tag():
        return True
    return pid_alive(int(match.group(1)))


def _delete(path: Path, root: Path, removed: list[str]) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    removed.append(path.relative_to(root).as_posix())


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def sweep_orphans(workspace: Workspace, *, shared: bool = False) -> list[str]:
    """Remove what an interrupted process left under the blob folder and the database does not use.

    Kept: uploads that a job not yet ``succeeded`` names (a retry needs them), staging folders of
    live processes, and everything the database references. Call it while holding the database
    (see :func:`curator.jobs.owner.acquire_server_lease`), before serving requests; or, where
    several servers share the database and blobs (PostgreSQL), with ``shared``: then only what has
    not changed for :data:`STAGING_IDLE_SECONDS` is removed (besides staging folders of this host's
    dead processes), since another server may be writing the rest right now.

    Returns:
        The blob-relative paths removed.
    """
    with workspace.db.session() as session:
        # Take the write lock first (touching the lease row): an ingest in another process (the
        # CLI) renames its frame folder into place inside its open transaction, so while the lock
        # is held every folder on disk either has committed rows or is an orphan.
        session.execute(update(ServerLease).values(heartbeat_at=time.time()))
        projects = set(session.scalars(select(Project.id)))
        videos = {(int(p), int(v)) for v, p in session.execute(select(Video.id, Video.project_id))}
        uploads = {
            str(params["path"])
            for params in session.scalars(select(Job.params).where(Job.kind == "ingest", Job.state != "succeeded"))
            if isinstance(params, dict) and params.get("upload") and params.get("path")
        }
        removed = _sweep_files(workspace.blobs.root, projects, videos, uploads, shared)
    if removed:
        log.warning("removed %d files or folders left by an interrupted process: %s", len(removed), removed[:20])
    return removed


def _sweep_files(
    root: Path, projects: set[int], videos: set[tuple[int, int]], uploads: set[str], shared: bool
) -> list[str]:
    removed: list[str] = []
    now = time.time()

    def _remove(path: Path, root: Path, removed: list[str]) -> None:
        if not shared or _idle(path, now) >= STAGING_IDLE_SECONDS:
            _delete(path, root, removed)

    for entry in _children(root / ".staging"):
        if not _staging_in_use(entry, now):
            _delete(entry, root, removed)
    for folder in _children(root / "projects"):
        if not folder.name.isdigit():
            continue
        project_id = int(folder.name)
        if project_id not in projects:
            _remove(folder, root, removed)
            continue
        for upload in _children(folder / "uploads"):
            if f"projects/{project_id}/uploads/{upload.name}" not in uploads:
                _remove(upload, root, removed)
        for video in _children(folder / "videos"):
            if video.name.isdigit() and (project_id, int(video.name)) not in videos:
                _remove(video, root, removed)
        for sub in ("index", "rounds"):
            for pattern in _TEMP_NAMES:
                for temp in sorted((folder / sub).glob(pattern)):
                    _remove(temp, root, removed)
    for pattern in _TEMP_NAMES:
        for temp in sorted((root / "thumbs").glob(pattern)):
            _remove(temp, root, removed)
    return removed
