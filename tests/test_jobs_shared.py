"""Runners sharing a database (curator.jobs.thread with ``server=False``, ``curator worker``): jobs
queued by a server that runs none (``serve_jobs: false``) are taken by a worker's poll; a cancel
asked through the API reaches the worker; a worker that stops hands its job back; a dead runner's
job is retried by another while it has attempts left. On SQLite and, with ``--db postgresql``, on
PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from curator.jobs import JobContext, ThreadJobRunner, create_job
from curator.jobs.owner import RunnerId, this_host
from curator.progress import check_cancel
from curator.store.models import Job
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_frames

FAST = {"job_poll_seconds": 0.1, "runner_heartbeat_seconds": 0.1}


def nap(ctx: JobContext) -> dict[str, Any]:
    """A job of ``params["steps"]`` short naps that stops when cancelled."""
    steps = int(ctx.params.get("steps", 5))
    for i in range(steps):
        check_cancel(ctx.cancelled)
        ctx.progress("nap", i, steps)
        time.sleep(0.05)
    return {"napped": steps}


def job_row(workspace: Workspace, job_id: int) -> Job:
    with workspace.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def wait_state(workspace: Workspace, job_id: int, states: set[str], timeout: float = 30.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = job_row(workspace, job_id)
        if job.state in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is {job_row(workspace, job_id).state}, not one of {states}")


@pytest.fixture
def worker_home(tmp_path: Path) -> Iterator[tuple[Workspace, Workspace]]:
    """Two workspaces of one database: the server's and a worker's (as two processes would have)."""
    settings = make_settings(tmp_path, **FAST, job_max_attempts=2)
    server, worker = Workspace(settings), Workspace(settings)
    yield server, worker
    server.close()
    worker.close()


def test_a_server_without_jobs_leaves_them_to_a_worker(worker_home: tuple[Workspace, Workspace]) -> None:
    server_ws, worker_ws = worker_home
    settings = server_ws.settings.model_copy(update={"serve_jobs": False})
    project_id, _ = seed_frames(server_ws, "p", 4)
    admin = auth(new_key(server_ws, "admin"))
    with TestClient(create_app(settings, workspace=server_ws)) as client:
        r = client.post(f"/projects/{project_id}/embed", json={"backbone": "classic"}, headers=admin)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        time.sleep(0.5)
        assert client.get(f"/jobs/{job_id}", headers=admin).json()["state"] == "queued"  # nobody runs it here
        from curator.jobs import engine_handlers

        runner = ThreadJobRunner(worker_ws, engine_handlers(worker_ws), server=False)
        runner.start()
        try:
            done = wait_state(worker_ws, job_id, {"succeeded", "failed"})
        finally:
            runner.shutdown()
        assert done.state == "succeeded" and done.result == {**(done.result or {}), "embedded": 4}
        assert done.owner == str(runner.runner_id)


def test_a_cancel_through_the_api_reaches_the_worker(worker_home: tuple[Workspace, Workspace]) -> None:
    server_ws, worker_ws = worker_home
    settings = server_ws.settings.model_copy(update={"serve_jobs": False})
    admin = auth(new_key(server_ws, "admin"))
    runner = ThreadJobRunner(worker_ws, {"nap": nap}, server=False)
    runner.start()
    try:
        with server_ws.db.session() as session:
            job_id = create_job(session, "nap", params={"steps": 2000}).id
        wait_state(worker_ws, job_id, {"running"})
        with TestClient(create_app(settings, workspace=server_ws)) as client:
            assert client.post(f"/jobs/{job_id}/cancel", headers=admin).status_code == 200
        assert wait_state(worker_ws, job_id, {"cancelled", "succeeded"}).state == "cancelled"
    finally:
        runner.shutdown()


def test_a_stopping_worker_hands_its_job_back(worker_home: tuple[Workspace, Workspace]) -> None:
    server_ws, worker_ws = worker_home
    first = ThreadJobRunner(worker_ws, {"nap": nap}, server=False)
    first.start()
    with server_ws.db.session() as session:
        job_id = create_job(session, "nap", params={"steps": 60}).id
    wait_state(worker_ws, job_id, {"running"})
    first.shutdown()
    back = job_row(server_ws, job_id)
    assert back.state == "queued" and back.owner is None and back.attempts == 1
    second = ThreadJobRunner(server_ws, {"nap": nap}, server=False)
    second.start()
    try:
        done = wait_state(server_ws, job_id, {"succeeded", "failed", "interrupted"})
    finally:
        second.shutdown()
    assert done.state == "succeeded" and done.attempts == 2 and done.owner == str(second.runner_id)


def test_a_dead_runners_job_is_retried_once_then_interrupted(worker_home: tuple[Workspace, Workspace]) -> None:
    server_ws, _ = worker_home
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = str(RunnerId(this_host(), dead.pid, "dead"))
    with server_ws.db.session() as session:
        retried = create_job(session, "nap", params={"steps": 3})
        spent = create_job(session, "nap", params={"steps": 3})
        for job, attempts in ((retried, 1), (spent, 2)):  # job_max_attempts is 2
            job.state, job.owner, job.heartbeat_at, job.attempts = "running", gone, time.time(), attempts
        retried_id, spent_id = retried.id, spent.id
    runner = ThreadJobRunner(server_ws, {"nap": nap}, server=False)
    runner.start()
    try:
        done = wait_state(server_ws, retried_id, {"succeeded", "interrupted"})
    finally:
        runner.shutdown()
    assert done.state == "succeeded" and done.attempts == 2 and done.result == {"napped": 3}
    spent_row = job_row(server_ws, spent_id)
    assert spent_row.state == "interrupted" and spent_row.error_code == "interrupted"
