"""Durability: kill -9 the server during a burst of submissions, restart it, and every submission
that got a 2xx is there; SQLite's integrity check says ``ok``."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from curator.workspace import Workspace
from tests.api_fixtures import annotate_until, box_rle, make_settings, new_key, seed_tasks, start_server

H, W = 24, 32
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # test_hardening_jobs kills a server during submissions, an ingest and an upload by default
@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_kill_9_during_submissions_loses_no_acknowledged_label(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    pid = seed_tasks(workspace, "durable", 2000, (H, W))
    keys = [new_key(workspace, "annotator", pid) for _ in range(4)]
    admin = new_key(workspace, "admin")
    workspace.close()

    server, url = start_server(settings.home)
    acknowledged: list[tuple[int, int]] = []  # (task id, frame id) of 2xx submissions
    lock = threading.Lock()
    stop = threading.Event()
    body = {"masks": [{"object_id": 1, "rle": box_rle(H, W)}]}

    def annotate(key: str) -> None:
        annotate_until(url, pid, key, body, stop, acknowledged, lock)

    threads = [threading.Thread(target=annotate, args=(k,)) for k in keys]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)  # mid-burst: requests are in flight
    server.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert len(acknowledged) >= 150

    db = settings.home / "curator.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    server, url = start_server(settings.home)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=10) as http:
            counts = http.get(f"/projects/{pid}/queue").json()
            assert counts["done"] >= len(acknowledged)
            for task_id, frame_id in acknowledged:
                masks = http.get(f"/frames/{frame_id}/annotations").json()["masks"]
                assert [m["source"] for m in masks] == ["human"], task_id
            coco = http.get(f"/projects/{pid}/export?format=coco&images=false").json()
            assert {a["image_id"] for a in coco["annotations"]} >= {f for _, f in acknowledged}
    finally:
        server.terminate()
        server.wait(timeout=15)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
