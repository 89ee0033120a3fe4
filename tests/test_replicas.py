"""Two API replicas on one PostgreSQL database, 16 annotators claiming and submitting through both:
no task is leased twice, none is lost, no answer is a 5xx. Real servers (``curator serve`` in
subprocesses) on a real PostgreSQL server (tests/pg.py), on loopback."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from curator.workspace import Workspace
from tests.api_fixtures import box_rle, make_settings, new_key, seed_tasks, spawn_server, wait_healthy

CLIENTS = 16
TASKS = 96


def annotate(url: str, project_id: int, key: str, log: dict[str, Any], lock: threading.Lock) -> None:
    """Claim 1-2 tasks and submit each until the queue is empty; record every claim and status."""
    body = {"masks": [{"object_id": 1, "rle": box_rle(24, 32)}]}
    empty = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        while empty < 3:
            r = http.post(f"/projects/{project_id}/queue/claim", json={"limit": 2})
            with lock:
                log["statuses"].append(r.status_code)
            if r.status_code != 200:
                continue
            tasks = r.json()["tasks"]
            if not tasks:
                counts = http.get(f"/projects/{project_id}/queue").json()
                empty = empty + 1 if counts.get("open", 0) == 0 else 0
                continue
            empty = 0
            for task in tasks:
                with lock:
                    log["claimed"].append((task["id"], key))
                s = http.post(f"/tasks/{task['id']}/submit", json=body)
                with lock:
                    log["statuses"].append(s.status_code)
                    if s.status_code == 200:
                        log["submitted"].append(task["id"])


def test_two_replicas_share_the_queue(tmp_path: Path, pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_server.create_database("replicas")
    monkeypatch.setenv("CURATOR_DATABASE_URL", url)
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    project_id = seed_tasks(workspace, "queue", TASKS)
    keys = [new_key(workspace, "annotator", project_id) for _ in range(CLIENTS)]
    servers = []
    try:
        for i in range(2):  # both on one home (shared blobs) and one database
            log_file = tmp_path / f"replica{i}.log"
            process, base = spawn_server(settings.home, log_file)
            wait_healthy(process, base, log_file)
            servers.append((process, base))
        log: dict[str, Any] = {"claimed": [], "submitted": [], "statuses": []}
        lock = threading.Lock()
        threads = [
            threading.Thread(target=annotate, args=(servers[i % 2][1], project_id, key, log, lock))
            for i, key in enumerate(keys)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not any(t.is_alive() for t in threads)
        statuses = Counter(log["statuses"])
        assert not [s for s in statuses if s >= 500], statuses
        claims = Counter(task for task, _ in log["claimed"])
        assert max(claims.values()) == 1, [t for t, n in claims.items() if n > 1]  # never leased twice
        assert sorted(log["submitted"]) == sorted(claims) and len(claims) == TASKS  # none lost
        with workspace.db.session() as session:
            from curator.store import repo

            assert repo.queue_counts(session, project_id)["done"] == TASKS
        for _, base in servers:  # both replicas served, and answer the same counts
            counts = httpx.get(f"{base}/projects/{project_id}/queue", headers={"Authorization": f"Bearer {keys[0]}"})
            assert counts.json()["done"] == TASKS
    finally:
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            process.wait(30)
        workspace.close()
