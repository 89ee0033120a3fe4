"""Hardening of jobs and storage: one owner per job and one server per database, job admission
(roles, merging, a per-project limit), orphan files swept at start-up, disk full as 507, and a
kill -9 of a real server during an ingest, an upload and a burst of submissions."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, text, update

from api import create_app
from curator.config import Settings
from curator.jobs import JobContext, ThreadJobRunner, create_job, recover_jobs
from curator.jobs.owner import RunnerId
from curator.progress import check_cancel
from curator.store import repo
from curator.store.blobs import BlobStore
from curator.store.models import Annotation, Frame, Job, Task, Video
from curator.workspace import Workspace
from tests.api_fixtures import (
    annotate_until,
    auth,
    box_rle,
    make_settings,
    new_key,
    seed_frames,
    seed_tasks,
    spawn_server,
    wait_healthy,
    wait_job,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "curator" / "data" / "sample.mp4"
H, W = 24, 32


class _IdleRunner:
    """A runner that never runs anything: submitted jobs stay ``queued``."""

    def start(self) -> None:
        pass

    def submit(self, job_id: int) -> None:
        pass

    def cancel(self, job_id: int) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        pass


def _sleeper(ctx: JobContext) -> dict[str, Any]:
    for i in range(2000):
        check_cancel(ctx.cancelled)
        ctx.progress("sleep", i, 2000)
        time.sleep(0.01)
    return {"slept": True}


# ---------------------------------------------------------------- 5. one owner per job, one server


def test_schema_upgrade_adds_the_job_owner_columns_to_an_old_database(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    with workspace.db.engine.begin() as conn:  # a database from before job owners (and migrations)
        conn.execute(text("ALTER TABLE jobs DROP COLUMN owner"))
        conn.execute(text("ALTER TABLE jobs DROP COLUMN heartbeat_at"))
        conn.execute(text("DROP TABLE alembic_version"))
    workspace.close()
    for _ in range(2):  # the upgrade is idempotent
        workspace = Workspace(settings)
        columns = {c["name"] for c in inspect(workspace.db.engine).get_columns("jobs")}
        assert {"owner", "heartbeat_at"} <= columns
        with workspace.db.session() as session:
            assert create_job(session, "embed").owner is None
        workspace.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_recovery_interrupts_only_jobs_whose_owner_is_gone(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, runner_timeout_seconds=30.0)
    workspace = Workspace(settings)
    here = socket.gethostname()
    now = time.time()
    owners: dict[str, tuple[str | None, float | None]] = {
        "no owner (an old database)": (None, None),
        "dead pid on this host": (str(RunnerId(here, _dead_pid(), "a1")), now),
        "stale heartbeat elsewhere": (str(RunnerId("elsewhere", 4242, "b2")), now - 120),
        "live elsewhere": (str(RunnerId("elsewhere", 4242, "c3")), now),
        "live in this process": (str(RunnerId(here, os.getpid(), "d4")), now),
    }
    ids: dict[str, int] = {}
    with workspace.db.session() as session:
        for name, (owner, beat) in owners.items():
            job = create_job(session, "embed")
            job.state, job.owner, job.heartbeat_at = "running", owner, beat
            session.flush()
            ids[name] = job.id
    interrupted, queued = recover_jobs(workspace)
    gone = {"no owner (an old database)", "dead pid on this host", "stale heartbeat elsewhere"}
    assert sorted(interrupted) == sorted(ids[n] for n in gone)
    assert queued == []
    with workspace.db.session() as session:
        for name, job_id in ids.items():
            job = session.get(Job, job_id)
            assert job is not None
            assert job.state == ("interrupted" if name in gone else "running"), name


def test_runner_owns_and_heartbeats_its_jobs_and_stops_one_taken_from_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, runner_heartbeat_seconds=0.1)
    workspace = Workspace(settings)
    runner = ThreadJobRunner(workspace, {"sleep": _sleeper})
    runner.start()
    try:
        with workspace.db.session() as session:
            job_id = create_job(session, "sleep").id
        runner.submit(job_id)
        deadline = time.monotonic() + 10
        beats: list[float] = []
        while len(set(beats)) < 3:
            assert time.monotonic() < deadline, beats
            with workspace.db.session() as session:
                job = session.get(Job, job_id)
                assert job is not None
                if job.state == "running" and job.heartbeat_at is not None:
                    assert job.owner == str(runner.runner_id)
                    beats.append(job.heartbeat_at)
            time.sleep(0.05)
        # another process decided the job's owner was gone: the runner stops the job at its next
        # heartbeat and leaves the row as the other process wrote it
        with workspace.db.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(state="interrupted", error_code="interrupted"))
        assert runner.wait_idle(10)
        with workspace.db.session() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.state == "interrupted" and job.result is None
    finally:
        runner.shutdown()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
@pytest.mark.sqlite_only  # checks the SQLite file / the one-server rule of SQLite
def test_a_second_server_on_one_database_refuses_to_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    workspace.close()
    home = settings.home
    first, url = spawn_server(home, tmp_path / "first.log")
    wait_healthy(first, url, tmp_path / "first.log")
    try:
        with httpx.Client(base_url=url, headers=admin, timeout=30) as http:
            pid = http.post("/projects", json={"name": "two"}).json()["id"]
            r = http.post(f"/projects/{pid}/videos", files={"file": ("sample.mp4", SAMPLE.read_bytes(), "video/mp4")})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            second, _ = spawn_server(home, tmp_path / "second.log")
            try:
                assert second.wait(timeout=60) == 2
            finally:
                _stop(second)
            message = (tmp_path / "second.log").read_text()
            assert f"another curator server (pid {first.pid} on {socket.gethostname()})" in message, message
            assert "stop it first" in message
            # the first server's job was left alone: it runs to the end and its frames are stored
            job = wait_job(http, job_id, admin)
            assert job["state"] == "succeeded" and job["result"]["frames"] == 250, job
            assert first.poll() is None
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # a server killed with -9 holds nothing: the next one starts at once
    third, url = spawn_server(home, tmp_path / "third.log")
    try:
        wait_healthy(third, url, tmp_path / "third.log")
    finally:
        _stop(third)


# ---------------------------------------------------------------- 6. job admission


def test_propagation_is_admin_work_identical_jobs_merge_and_queues_are_limited(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_queued_jobs=3)
    workspace = Workspace(settings)
    pid, frame_ids = seed_frames(workspace, "p", 6, (H, W), videos=3)
    with workspace.db.session() as session:
        repo.create_tasks(session, pid, None, [(f, "test") for f in frame_ids])
    admin = auth(new_key(workspace, "admin"))
    annotator = auth(new_key(workspace, "annotator", pid))
    with TestClient(create_app(settings, workspace=workspace, runner=_IdleRunner())) as client:
        videos = sorted(v["id"] for v in client.get(f"/projects/{pid}/videos", headers=admin).json())
        r = client.post(f"/projects/{pid}/propagate", json={"video_id": videos[0]}, headers=annotator)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        first = client.post(f"/projects/{pid}/propagate", json={"video_id": videos[0]}, headers=admin)
        assert first.status_code == 202, first.text
        again = client.post(f"/projects/{pid}/propagate", json={"video_id": videos[0]}, headers=admin)
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
        between = client.post(f"/projects/{pid}/propagate", json={"video_id": videos[0], "scope": "between"},
                              headers=admin)
        assert between.status_code == 202 and between.json()["id"] != first.json()["id"]
        # an annotator's submit with propagate joins the job queued for its video
        tasks = client.post(f"/projects/{pid}/queue/claim", json={"limit": 6}, headers=annotator).json()["tasks"]
        by_video = {v: [t for t in tasks if t["video_id"] == v] for v in videos}
        body = {"masks": [{"object_id": 1, "rle": box_rle(H, W)}], "propagate": True}
        r = client.post(f"/tasks/{by_video[videos[0]][0]['id']}/submit", json=body, headers=annotator)
        assert r.status_code == 200 and r.json()["propagate_job"]["id"] == first.json()["id"], r.text
        # the third queued job fills the project's queue; a fourth of any kind gets 429
        assert client.post(f"/projects/{pid}/propagate", json={"video_id": videos[1]}, headers=admin).status_code == 202
        full = [
            client.post(f"/projects/{pid}/propagate", json={"video_id": videos[2]}, headers=admin),
            client.post(f"/projects/{pid}/selections", json={"budget": 2}, headers=admin),
            client.post(f"/projects/{pid}/embed", json={}, headers=admin),
            client.post(f"/projects/{pid}/rounds", json={"budget": 2}, headers=admin),
            client.post(f"/projects/{pid}/videos", files={"file": ("a.mp4", b"x" * 1000)}, headers=admin),
        ]
        for r in full:
            assert r.status_code == 429 and r.json()["code"] == "too_many_jobs", r.text
        assert not (settings.blob_root / f"projects/{pid}/uploads").exists() or not any(
            (settings.blob_root / f"projects/{pid}/uploads").iterdir()
        )
        # merging into a queued job still works when the queue is full
        again = client.post(f"/projects/{pid}/propagate", json={"video_id": videos[0]}, headers=admin)
        assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
        # a submit that would need a new propagation job is refused whole: nothing is stored
        task = by_video[videos[2]][0]
        r = client.post(f"/tasks/{task['id']}/submit", json=body, headers=annotator)
        assert r.status_code == 429 and r.json()["code"] == "too_many_jobs"
        with workspace.db.session() as session:
            assert session.get(Task, task["id"]).state == "leased"  # type: ignore[union-attr]
            assert not session.scalars(select(Annotation).where(Annotation.frame_id == task["frame_id"])).all()
        r = client.post(f"/tasks/{task['id']}/submit", json={**body, "propagate": False}, headers=annotator)
        assert r.status_code == 200
        # cancelling a queued job frees a place
        assert client.post(f"/jobs/{between.json()['id']}/cancel", headers=admin).status_code == 200
        r = client.post(f"/projects/{pid}/propagate", json={"video_id": videos[2]}, headers=admin)
        assert r.status_code == 202
        with workspace.db.session() as session:
            assert session.scalar(select(func.count(Job.id)).where(Job.state == "queued")) == 3


# ---------------------------------------------------------------- 7. orphans after a crash


def _blob_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.sqlite_only  # shared databases sweep only what is an hour idle (tests/test_store_backends.py)
def test_start_up_sweeps_orphans_a_crash_left(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    pid, _ = seed_frames(workspace, "p", 2, (H, W))
    admin = auth(new_key(workspace, "admin"))
    blobs = workspace.blobs
    kept = {
        f"projects/{pid}/uploads/kept.upload",  # the upload of an interrupted ingest job: retryable
        f"projects/{pid}/index/classic.faiss",
        "thumbs/abc-256.jpg",
        "synthetic/frame.jpg",
    }
    orphans = {
        f"projects/{pid}/uploads/partial.upload",  # an upload cut off by the crash
        f"projects/{pid}/uploads/done.upload",  # referenced only by a job that succeeded
        f".staging/ingest-{_dead_pid()}-abcd1234/0000001.jpg",  # an ingest killed part way
        ".staging/ingest-oldname/0000001.jpg",  # staging from before pids were in the name
        f"projects/{pid}/videos/999/frames/0000001.jpg",  # frames renamed in, rows never committed
        "projects/998/videos/1/frames/0000001.jpg",  # files of a deleted project
        "thumbs/.tmp-x1y2",  # a half-written atomic file
        f"projects/{pid}/index/.tmp-abc.faiss",
    }
    live_staging = f".staging/ingest-{os.getpid()}-live0001/0000001.jpg"  # an ingest running here now
    for relative in kept | orphans | {live_staging}:
        if relative != "synthetic/frame.jpg":
            blobs.write_bytes_atomic(relative, b"x")
    with workspace.db.session() as session:
        for path, state in ((f"projects/{pid}/uploads/kept.upload", "interrupted"),
                            (f"projects/{pid}/uploads/done.upload", "succeeded")):
            job = create_job(session, "ingest", project_id=pid, params={"path": path, "upload": True})
            job.state = state
    with TestClient(create_app(settings, workspace=workspace)) as client:
        assert client.get(f"/projects/{pid}", headers=admin).status_code == 200
        files = _blob_files(settings.blob_root)
        assert files == kept | {live_staging}, files


def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *args, **kwargs: _FullDisk(real_fdopen(fd, *args, **kwargs), 10))
    with pytest.raises(OSError):
        blobs.write_bytes_atomic("thumbs/a.jpg", b"x" * 100_000)
    monkeypatch.undo()
    assert _blob_files(tmp_path / "blobs") == set()


# ---------------------------------------------------------------- 8. disk full


class _FullDisk:
    """A file handle that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, handle: Any, room: int) -> None:
        self.handle = handle
        self.room = room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return int(self.handle.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Workspace, Settings, dict[str, str], int]]:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    pid = seed_tasks(workspace, "p", 4, (H, W))
    admin = auth(new_key(workspace, "admin"))
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace, settings, admin, pid


def test_disk_full_during_an_upload_is_507_and_leaves_nothing(
    served: tuple[TestClient, Workspace, Settings, dict[str, str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, workspace, settings, admin, pid = served
    real_open = Path.open

    def open_on_a_full_disk(self: Path, *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, *args, **kwargs)
        return _FullDisk(handle, 1000) if self.suffix == ".upload" else handle

    monkeypatch.setattr(Path, "open", open_on_a_full_disk)
    r = client.post(f"/projects/{pid}/videos", files={"file": ("sample.mp4", SAMPLE.read_bytes())}, headers=admin)
    assert r.status_code == 507, r.text
    assert r.json()["code"] == "insufficient_storage" and "space" in r.json()["detail"]
    uploads = settings.blob_root / f"projects/{pid}/uploads"
    assert not uploads.exists() or not any(uploads.iterdir())
    with workspace.db.session() as session:
        assert session.scalar(select(func.count(Job.id))) == 0


@pytest.mark.parametrize("failure", ["os", "sqlite"])
def test_disk_full_while_storing_a_submission_is_507_and_stores_nothing(
    served: tuple[TestClient, Workspace, Settings, dict[str, str], int],
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    from sqlalchemy.exc import OperationalError

    client, workspace, _settings, admin, pid = served
    task = client.post(f"/projects/{pid}/queue/claim", json={"limit": 1}, headers=admin).json()["tasks"][0]

    def full(*_args: Any, **_kwargs: Any) -> None:
        if failure == "os":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise OperationalError("INSERT INTO annotations", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(repo, "store_human_masks", full)
    body = {"masks": [{"object_id": 1, "rle": box_rle(H, W)}]}
    r = client.post(f"/tasks/{task['id']}/submit", json=body, headers=admin)
    assert r.status_code == 507 and r.json()["code"] == "insufficient_storage", r.text
    monkeypatch.undo()
    with workspace.db.session() as session:
        assert session.get(Task, task["id"]).state == "leased"  # type: ignore[union-attr]
        assert session.scalar(select(func.count(Annotation.id))) == 0
    # once there is room again the same submission goes through
    assert client.post(f"/tasks/{task['id']}/submit", json=body, headers=admin).status_code == 200


def test_an_ingest_job_on_a_full_disk_fails_with_insufficient_storage_and_stores_nothing(
    served: tuple[TestClient, Workspace, Settings, dict[str, str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, workspace, settings, admin, pid = served
    real_write = Path.write_bytes
    written = []

    def write_on_a_full_disk(self: Path, data: Any) -> int:
        if self.parent.name.startswith("ingest-"):
            written.append(self.name)
            if len(written) > 20:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_on_a_full_disk)
    r = client.post(f"/projects/{pid}/videos", files={"file": ("sample.mp4", SAMPLE.read_bytes())}, headers=admin)
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"], admin)
    assert job["state"] == "failed" and job["error"]["code"] == "insufficient_storage", job
    assert "space" in job["error"]["detail"]
    staging = settings.blob_root / ".staging"
    assert not staging.exists() or not any(staging.iterdir())
    with workspace.db.session() as session:
        assert session.scalar(select(func.count(Video.id))) == 1  # the seeded one only
        assert session.scalar(select(func.count(Frame.id))) == 4


# ---------------------------------------------------------------- kill -9 of a real server


def _multipart_head(boundary: str, filename: str) -> bytes:
    return (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
@pytest.mark.sqlite_only  # shared databases sweep only what is an hour idle (tests/test_store_backends.py)
def test_kill_9_during_ingest_upload_and_submissions(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    pid = seed_tasks(workspace, "durable", 600, (H, W))
    keys = [new_key(workspace, "annotator", pid) for _ in range(3)]
    admin = auth(new_key(workspace, "admin"))
    workspace.close()
    log = tmp_path / "server.log"
    server, url = spawn_server(settings.home, log)
    wait_healthy(server, url, log)

    acknowledged: list[tuple[int, int]] = []  # (task id, frame id) of 200 submissions
    lock = threading.Lock()
    stop = threading.Event()
    body = {"masks": [{"object_id": 1, "rle": box_rle(H, W)}]}

    def annotate(key: str) -> None:
        annotate_until(url, pid, key, body, stop, acknowledged, lock)

    def slow_upload() -> None:  # (b) an upload that is still arriving when the server dies
        boundary = "curatorboundary"

        def chunks() -> Iterator[bytes]:
            yield _multipart_head(boundary, "slow.mp4")
            data = SAMPLE.read_bytes()
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]
                if start > 64 * 1024:
                    stop.wait(0.5)
                if stop.is_set():
                    return

        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/projects/{pid}/videos", content=chunks(), timeout=60,
                       headers={**admin, "Content-Type": f"multipart/form-data; boundary={boundary}"})

    threads = [threading.Thread(target=annotate, args=(k,)) for k in keys]
    threads.append(threading.Thread(target=slow_upload))
    uploads = settings.blob_root / f"projects/{pid}/uploads"
    killed_mid_ingest = False
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 50 or not uploads.exists() or not any(uploads.iterdir()):
            assert time.monotonic() < deadline, "no submissions or no upload in progress"
            time.sleep(0.02)
        # (a) an ingest of a real video, acknowledged with 202 and killed while it runs
        with httpx.Client(base_url=url, headers=admin, timeout=30) as http:
            r = http.post(f"/projects/{pid}/videos", files={"file": ("sample.mp4", SAMPLE.read_bytes(), "video/mp4")})
            assert r.status_code == 202, r.text
            ingest_id = r.json()["id"]
            while True:
                job = http.get(f"/jobs/{ingest_id}").json()
                if job["state"] != "queued" and job["progress"]["done"] > 0:
                    killed_mid_ingest = job["state"] == "running"
                    break
                assert time.monotonic() < deadline, job
                time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        if server.poll() is None:
            server.kill()
            server.wait()
    assert len(acknowledged) >= 50
    # what the crash left: the ingest's upload, the upload cut off, and the ingest's staged frames
    assert len(list(uploads.iterdir())) == (2 if killed_mid_ingest else 1)
    if killed_mid_ingest:
        assert list((settings.blob_root / ".staging").glob("ingest-*/*.jpg"))

    db = settings.home / "curator.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    server, url = spawn_server(settings.home, log)
    try:
        wait_healthy(server, url, log)
        with httpx.Client(base_url=url, headers=admin, timeout=30) as http:
            for _task_id, frame_id in acknowledged:
                masks = http.get(f"/frames/{frame_id}/annotations").json()["masks"]
                assert [m["source"] for m in masks] == ["human"], frame_id
            job = http.get(f"/jobs/{ingest_id}").json()
            assert job["state"] in ("interrupted", "succeeded"), job
            _assert_no_orphans(settings)
            if job["state"] == "interrupted":  # its upload was kept: a retry ingests it
                assert http.post(f"/jobs/{ingest_id}/retry").status_code == 200
                job = wait_job(http, ingest_id, admin)
            assert job["state"] == "succeeded" and job["result"]["frames"] == 250, job
            _assert_no_orphans(settings)
    finally:
        _stop(server)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _assert_no_orphans(settings: Settings) -> None:
    """Every file under the blob folder is a frame, an upload a job may still need, or a cache."""
    workspace = Workspace(settings)
    try:
        with workspace.db.session() as session:
            frames = set(session.scalars(select(Frame.blob_path)))
            uploads = {
                j.params["path"]
                for j in session.scalars(select(Job).where(Job.kind == "ingest", Job.state != "succeeded"))
                if j.params.get("upload")
            }
    finally:
        workspace.close()
    root = settings.blob_root
    unreferenced = {
        f for f in _blob_files(root)
        if f not in frames | uploads
        and not f.startswith(("thumbs/", "segment-cache/"))
        and "/index/" not in f
        and "/views/" not in f  # the embedding map's cached projection
    }
    assert unreferenced == set(), sorted(unreferenced)[:10]
