"""Two ``curator worker`` processes on one database: kill -9 of the one running a job (issue 18).

The survivor finds the job's owner gone (its process no longer exists on this host), queues the
job again (``job_max_attempts=3``), takes it and completes it; the killed attempt stored nothing,
so the project holds the video once, with every frame once. Runs on SQLite, and on PostgreSQL under
``--db postgresql`` (the workers read ``CURATOR_DATABASE_URL``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from curator.config import load_settings
from curator.jobs import create_job, get_job
from curator.jobs.owner import RunnerId
from curator.store import repo
from curator.store.models import Annotation, Embedding, Frame, Job, Video
from curator.workspace import Workspace

SAMPLE = Path(__file__).resolve().parents[1] / "curator" / "data" / "sample.mp4"

#: The workers' settings: a dead owner is noticed within a poll, a job gets three runs.
WORKER_ENV = {
    "CURATOR_BACKBONE": "classic",
    "CURATOR_MAX_SIDE": "640",
    "CURATOR_SAMPLE_FPS": "0",
    "CURATOR_SAMPLE_STRIDE": "1",
    "CURATOR_JOB_MAX_ATTEMPTS": "3",
    "CURATOR_RUNNER_TIMEOUT_SECONDS": "3",
    "CURATOR_RUNNER_HEARTBEAT_SECONDS": "0.5",
    "CURATOR_JOB_POLL_SECONDS": "0.2",
    "CURATOR_PREANNOTATE": "false",
    "CURATOR_SEGMENT_WARM": "false",
}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_job(workspace: Workspace, job_id: int, done: object, timeout: float) -> Job:
    """Poll the job row until ``done(job)`` is true; returns that row."""
    deadline = time.monotonic() + timeout
    while True:
        with workspace.db.session() as session:
            job = get_job(session, job_id)
            assert job is not None
            if done(job):  # type: ignore[operator]
                return job
        assert time.monotonic() < deadline, f"job {job_id}: {job.state} {job.progress_done}/{job.progress_total}"
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_kill_9_of_the_worker_running_a_job_another_retries_it_and_nothing_is_done_twice(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings(None, home=home, **{k[len("CURATOR_") :].lower(): v for k, v in WORKER_ENV.items()})
    workspace = Workspace(settings)  # makes the schema before the workers open the database
    with workspace.db.session() as session:
        project_id = repo.get_or_create_project(session, "kill").id
    env = {**os.environ, **WORKER_ENV, "CURATOR_HOME": str(home)}
    curator = str(Path(sys.executable).with_name("curator"))
    workers = [
        subprocess.Popen([curator, "worker"], env=env, stderr=open(tmp_path / f"worker{i}.log", "wb"))  # noqa: SIM115
        for i in range(2)
    ]
    try:
        with workspace.db.session() as session:
            job_id = int(create_job(session, "ingest", project_id=project_id, params={
                "path": str(SAMPLE), "upload": False, "filename": "sample.mp4", "backbone": "classic"}).id)
        # mid-ingest: running, with frames staged, not yet stored
        first = _wait_job(workspace, job_id, lambda j: j.state == "running" and (j.progress_done or 0) > 0, 120)
        owner = RunnerId.parse(first.owner)
        assert owner is not None and first.attempts == 1
        victim = next(w for w in workers if w.pid == owner.pid)
        survivor = next(w for w in workers if w is not victim)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        assert first.progress_done < (first.progress_total or 250)

        job = _wait_job(workspace, job_id, lambda j: j.state not in ("queued", "running"), 180)
        assert job.state == "succeeded", (job.error_code, job.error)
        assert job.attempts == 2
        retried_by = RunnerId.parse(job.owner)
        assert retried_by is not None and retried_by.pid == survivor.pid
        assert survivor.poll() is None  # still serving
        assert job.result is not None and job.result["created"] and job.result["frames"] == 250
    finally:
        for worker in workers:
            _stop(worker)

    with workspace.db.session() as session:
        videos = session.scalars(select(Video).where(Video.project_id == project_id)).all()
        assert len(videos) == 1 and videos[0].decoded_frames == 250
        indexes = session.scalars(select(Frame.frame_index).where(Frame.video_id == videos[0].id)).all()
        assert sorted(indexes) == list(range(250))  # every frame once
        frame_ids = select(Frame.id).where(Frame.video_id == videos[0].id)
        embeddings = session.scalar(select(func.count()).select_from(Embedding).where(Embedding.frame_id.in_(frame_ids)))
        assert embeddings == 250
        assert session.scalar(select(func.count()).select_from(Annotation)) == 0
    frames_dir = settings.blob_root / f"projects/{project_id}/videos/{videos[0].id}/frames"
    assert len(list(frames_dir.iterdir())) == 250
    workspace.close()
