"""Jobs over HTTP: progress and timings, failures with codes, cancel, and recovery after a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api import create_app
from api.jobs import build_handlers
from curator.jobs import JobContext, ThreadJobRunner, create_job
from curator.progress import check_cancel
from curator.store.models import Job
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_frames, wait_job


def _slow(ctx: JobContext) -> dict[str, Any]:
    for i in range(400):
        check_cancel(ctx.cancelled)
        ctx.progress("sleep", i, 400)
        time.sleep(0.01)
    return {"slept": True}


def test_restart_marks_running_jobs_interrupted_and_runs_queued_ones(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    project_id, _ = seed_frames(workspace, "p", 6)
    admin = auth(new_key(workspace, "admin"))
    # the state a killed server leaves behind: one job running, one queued
    with workspace.db.session() as session:
        running = create_job(session, "embed", project_id=project_id, params={"backbone": "classic"})
        running.state = "running"
        queued = create_job(session, "embed", project_id=project_id, params={"backbone": "classic"})
        running_id, queued_id = running.id, queued.id
    with TestClient(create_app(settings, workspace=workspace)) as client:
        job = client.get(f"/jobs/{running_id}", headers=admin).json()
        assert job["state"] == "interrupted" and job["error"]["code"] == "interrupted"
        assert "retry" in job["error"]["detail"]
        done = wait_job(client, queued_id, admin)
        assert done["state"] == "succeeded" and done["result"]["embedded"] == 6
        # retry the interrupted one: it runs again (nothing left to embed)
        r = client.post(f"/jobs/{running_id}/retry", headers=admin)
        assert r.status_code == 200 and r.json()["state"] in ("queued", "running", "succeeded")
        again = wait_job(client, running_id, admin)
        assert again["state"] == "succeeded" and again["result"]["embedded"] == 0 and again["attempts"] == 1
        assert client.post(f"/jobs/{running_id}/retry", headers=admin).json()["code"] == "not_retryable"
        listed = client.get(f"/projects/{project_id}/jobs", headers=admin).json()
        assert {j["id"] for j in listed} == {running_id, queued_id}


def test_cancel_running_and_queued_jobs_and_shutdown_interrupts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    project_id, _ = seed_frames(workspace, "p", 2)
    admin = auth(new_key(workspace, "admin"))
    runner = ThreadJobRunner(workspace, {**build_handlers(workspace), "sleep": _slow}, workers=1)
    app = create_app(settings, workspace=workspace, runner=runner)
    with workspace.db.session() as session:
        ids = [create_job(session, "sleep", project_id=project_id).id for _ in range(3)]
    with TestClient(app) as client:
        deadline = time.monotonic() + 10
        while client.get(f"/jobs/{ids[0]}", headers=admin).json()["progress"]["done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first = client.get(f"/jobs/{ids[0]}", headers=admin).json()
        assert first["state"] == "running" and first["progress"]["total"] == 400 and first["started_at"]
        # the second is still queued: cancelling it is immediate
        r = client.post(f"/jobs/{ids[1]}/cancel", headers=admin)
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        # the running one stops at its next check
        assert client.post(f"/jobs/{ids[0]}/cancel", headers=admin).status_code == 200
        assert wait_job(client, ids[0], admin)["state"] == "cancelled"
        assert client.post(f"/jobs/{ids[0]}/cancel", headers=admin).json()["code"] == "job_finished"
        # the third starts; stopping the server interrupts it (retryable), it is not lost
        while client.get(f"/jobs/{ids[2]}", headers=admin).json()["state"] != "running":
            time.sleep(0.02)
    with workspace.db.session() as session:
        third = session.get(Job, ids[2])
        assert third is not None and third.state == "interrupted"


def test_failed_job_has_a_code_and_unknown_ids_are_404(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    project_id, _ = seed_frames(workspace, "p", 4)
    admin = auth(new_key(workspace, "admin"))
    with TestClient(create_app(settings, workspace=workspace)) as client:
        r = client.post(f"/projects/{project_id}/selections", json={"budget": 2}, headers=admin)
        job = wait_job(client, r.json()["id"], admin)
        assert job["state"] == "failed" and job["error"]["code"] == "no_embeddings", job
        assert job["finished_at"] is not None
        r = client.post(f"/projects/{project_id}/selections", json={"budget": 2, "strategy": "nope"}, headers=admin)
        assert r.status_code == 422 and r.json()["code"] == "unknown_strategy"
        for path in ("/jobs/999", "/selections/999", "/tasks/999", "/frames/999/image", "/projects/999"):
            r = client.get(path, headers=admin)
            assert r.status_code == 404 and r.json()["code"] == "not_found", path
        assert client.post("/jobs/999/cancel", headers=admin).status_code == 404
        r = client.post(f"/projects/{project_id}/propagate", json={"video_id": 999}, headers=admin)
        assert r.status_code == 404
        r = client.post(f"/projects/{project_id}/propagate", json={}, headers=admin)
        assert r.status_code == 409 and r.json()["code"] == "no_keyframes", r.text
        # propagating a video with no human masks fails with a code, storing nothing
        video_id = client.get(f"/projects/{project_id}/videos", headers=admin).json()[0]["id"]
        r = client.post(f"/projects/{project_id}/propagate", json={"video_id": video_id}, headers=admin)
        assert wait_job(client, r.json()["id"], admin)["error"]["code"] == "no_keyframes"
        r = client.post(f"/projects/{project_id}/propagate", json={"video_id": video_id, "propagator": "x"},
                        headers=admin)
        assert r.status_code == 422 and r.json()["code"] == "unknown_propagator"


def test_runner_never_runs_a_job_twice(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    calls: list[int] = []
    lock = threading.Lock()

    def count(ctx: JobContext) -> None:
        with lock:
            calls.append(ctx.job_id)

    runner = ThreadJobRunner(workspace, {"count": count}, workers=4)
    with workspace.db.session() as session:
        ids = [create_job(session, "count").id for _ in range(20)]
    runner.start()  # picks up the 20 queued jobs
    for job_id in ids:  # and a duplicate submission of each is skipped
        runner.submit(job_id)
    assert runner.wait_idle(30)
    runner.shutdown()
    assert sorted(calls) == ids
