"""``curator bench api``: claim+submit cycles per second and latency of the labelling queue on loopback.

A throwaway home gets a project with synthetic frames and ``tasks`` open tasks, and one annotator key
per client; ``curator serve`` runs it in a child process (so the server and the clients do not share
one interpreter lock); ``clients`` threads with keep-alive connections each loop *claim one task,
submit one mask* for ``seconds``. A cycle's latency is from sending the claim to receiving the
submission's answer.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table

from curator.config import load_settings
from curator.store.models import Frame, Project, Video, utcnow
from curator.store.service_models import Task
from curator.workspace import Workspace

#: ``(session, role, project_id) -> (row, secret)``; by default ``api.auth.create_key``.
KeyFactory = Callable[..., tuple[Any, str]]
FRAME_SIZE = (64, 64)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(workspace: Workspace, tasks: int, clients: int, create_key: KeyFactory) -> tuple[int, list[str]]:
    height, width = FRAME_SIZE
    with workspace.db.session() as session:
        project = Project(name="bench")
        session.add(project)
        session.flush()
        video = Video(
            project_id=project.id, filename="bench.mp4", source_path="", content_hash="bench", size_bytes=0,
            codec="none", fps=25.0, width=width, height=height, duration=tasks / 25, decoded_frames=tasks,
            sample_fps=0.0, sample_stride=1,
        )
        session.add(video)
        session.flush()
        frame_table, task_table = Frame.__table__, Task.__table__
        assert isinstance(frame_table, Table) and isinstance(task_table, Table)
        for start in range(0, tasks, 5000):
            count = min(5000, tasks - start)
            session.execute(
                frame_table.insert(),
                [
                    {"video_id": video.id, "frame_index": i, "timestamp": i / 25, "width": width, "height": height,
                     "content_hash": f"bench-{i}", "blob_path": "bench/frame.jpg"}
                    for i in range(start, start + count)
                ],
            )
        frame_ids = [row[0] for row in session.execute(frame_table.select().with_only_columns(frame_table.c.id))]
        now = utcnow()
        session.execute(
            task_table.insert(),
            [
                {"project_id": project.id, "frame_id": f, "state": "open", "priority": 0, "reason": "bench",
                 "leases": 0, "created_at": now}
                for f in frame_ids
            ],
        )
        keys = [create_key(session, "annotator", project.id)[1] for _ in range(clients)]
        return project.id, keys


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def bench_api(
    create_key: KeyFactory | None = None,
    *,
    clients: int = 8,
    seconds: float = 20.0,
    tasks: int = 20000,
    startup_timeout: float = 60.0,
) -> dict[str, Any]:
    """Run the benchmark and return the report.

    Args:
        create_key: Key factory of the API (default ``api.auth.create_key``).
        clients: Concurrent annotator clients (threads, one keep-alive connection each).
        seconds: Duration of the measured run.
        tasks: Open tasks in the queue; the run stops early if they run out.
        startup_timeout: Seconds to wait for the server to answer ``/health``.

    Returns:
        ``{"cycles_per_s", "p50_ms", "p99_ms", "errors", ...}`` (cycle latency; per-request
        percentiles and counts as extra keys).
    """
    import httpx

    from curator.annotate.masks import encode_rle

    if create_key is None:
        from api.auth import create_key as api_create_key

        create_key = api_create_key

    home = Path(tempfile.mkdtemp(prefix="curator-bench-api-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        settings = load_settings(None, home=home, backbone="classic")
        workspace = Workspace(settings)
        project_id, keys = _seed(workspace, tasks, clients, create_key)
        workspace.close()
        port = _free_port()
        env = {**os.environ, "CURATOR_HOME": str(home), "CURATOR_BACKBONE": "classic"}
        server = subprocess.Popen(
            [sys.executable, "-m", "curator", "serve", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode(errors="replace") if server.stderr else ""
                raise RuntimeError(f"the server did not start: {err[-2000:]}")
            time.sleep(0.1)

        mask = np.zeros(FRAME_SIZE, bool)
        mask[8:40, 10:50] = True
        body = {"masks": [{"object_id": 1, "rle": encode_rle(mask)}]}
        cycles: list[list[float]] = [[] for _ in range(clients)]
        requests: list[list[float]] = [[] for _ in range(clients)]
        errors = [0] * clients
        dry = threading.Event()
        start_gate = threading.Barrier(clients + 1)
        stop_at = [0.0]

        def client(i: int) -> None:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys[i]}"}, timeout=30) as http:
                http.get("/health")  # open the connection before the clock starts
                start_gate.wait()
                while time.perf_counter() < stop_at[0] and not dry.is_set():
                    t0 = time.perf_counter()
                    try:
                        claimed = http.post(f"/projects/{project_id}/queue/claim", json={"limit": 1})
                        t1 = time.perf_counter()
                        if claimed.status_code != 200:
                            errors[i] += 1
                            continue
                        leased = claimed.json()["tasks"]
                        if not leased:
                            dry.set()
                            break
                        done = http.post(f"/tasks/{leased[0]['id']}/submit", json=body)
                        t2 = time.perf_counter()
                    except httpx.HTTPError:
                        errors[i] += 1
                        continue
                    if done.status_code != 200:
                        errors[i] += 1
                        continue
                    cycles[i].append(t2 - t0)
                    requests[i].extend((t1 - t0, t2 - t1))

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        stop_at[0] = time.perf_counter() + seconds
        began = time.perf_counter()
        start_gate.wait()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        all_cycles = [c for per in cycles for c in per]
        all_requests = [r for per in requests for r in per]
        return {
            "cycles_per_s": round(len(all_cycles) / elapsed, 2),
            "p50_ms": round(_percentile(all_cycles, 50) * 1000, 2),
            "p99_ms": round(_percentile(all_cycles, 99) * 1000, 2),
            "errors": sum(errors),
            "cycles": len(all_cycles),
            "seconds": round(elapsed, 2),
            "clients": clients,
            "request_p50_ms": round(_percentile(all_requests, 50) * 1000, 2),
            "request_p99_ms": round(_percentile(all_requests, 99) * 1000, 2),
            "ran_dry": dry.is_set(),
            "latency": "cycle = claim(limit=1) + submit(one RLE mask), loopback HTTP/1.1 keep-alive",
        }
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(home, ignore_errors=True)
