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
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table

from curator.config import load_settings
from curator.store.keys import create_key
from curator.store.models import Frame, Project, Task, Video, utcnow
from curator.workspace import Workspace

FRAME_SIZE = (64, 64)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(workspace: Workspace, tasks: int, clients: int) -> tuple[int, list[str]]:
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


def _spawn_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    """``curator serve`` over ``home`` on loopback ``port``, in a child process."""
    env = {**os.environ, "CURATOR_HOME": str(home), "CURATOR_BACKBONE": "classic"}
    return subprocess.Popen(
        [sys.executable, "-m", "curator", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_healthy(server: subprocess.Popen[bytes], url: str, startup_timeout: float) -> None:
    """Poll ``/health`` until it answers 200.

    Raises:
        RuntimeError: If the server exits or does not answer within ``startup_timeout`` seconds.
    """
    import httpx

    deadline = time.monotonic() + startup_timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            err = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise RuntimeError(f"the server did not start: {err[-2000:]}")
        time.sleep(0.1)


def _stop(server: subprocess.Popen[bytes] | None) -> None:
    """Terminate the server, killing it if it has not exited after 15 s."""
    if server is None:
        return
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


def _submit_body() -> dict[str, Any]:
    """The submission every cycle sends: one rectangular RLE mask."""
    from curator.annotate.masks import encode_rle

    mask = np.zeros(FRAME_SIZE, bool)
    mask[8:40, 10:50] = True
    return {"masks": [{"object_id": 1, "rle": encode_rle(mask)}]}


class _Clients:
    """Annotator threads, one per key, each looping *claim one task, submit one mask*; and what they measured.

    Args:
        url: The server's base URL.
        keys: One annotator key per client.
        project_id: The project whose queue is claimed from.
        body: The submission each cycle sends.
    """

    def __init__(self, url: str, keys: list[str], project_id: int, body: dict[str, Any]) -> None:
        self.url = url
        self.keys = keys
        self.project_id = project_id
        self.body = body
        self.cycles: list[list[float]] = [[] for _ in keys]
        self.requests: list[list[float]] = [[] for _ in keys]
        self.errors = [0] * len(keys)
        self.dry = threading.Event()
        self.start_gate = threading.Barrier(len(keys) + 1)
        self.stop_at = 0.0

    def run(self, seconds: float) -> float:
        """Start every client at once, stop after ``seconds`` or when the queue runs dry.

        Returns:
            The seconds the clients ran.
        """
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(len(self.keys))]
        for thread in threads:
            thread.start()
        self.stop_at = time.perf_counter() + seconds
        began = time.perf_counter()
        self.start_gate.wait()
        for thread in threads:
            thread.join()
        return time.perf_counter() - began

    def _client(self, i: int) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.keys[i]}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            http.get("/health")  # open the connection before the clock starts
            self.start_gate.wait()
            while time.perf_counter() < self.stop_at and not self.dry.is_set():
                t0 = time.perf_counter()
                try:
                    claimed = http.post(f"/projects/{self.project_id}/queue/claim", json={"limit": 1})
                    t1 = time.perf_counter()
                    if claimed.status_code != 200:
                        self.errors[i] += 1
                        continue
                    leased = claimed.json()["tasks"]
                    if not leased:
                        self.dry.set()
                        break
                    done = http.post(f"/tasks/{leased[0]['id']}/submit", json=self.body)
                    t2 = time.perf_counter()
                except httpx.HTTPError:
                    self.errors[i] += 1
                    continue
                if done.status_code != 200:
                    self.errors[i] += 1
                    continue
                self.cycles[i].append(t2 - t0)
                self.requests[i].extend((t1 - t0, t2 - t1))

    def report(self, elapsed: float) -> dict[str, Any]:
        """The benchmark report of a run that took ``elapsed`` seconds (see :func:`bench_api`)."""
        all_cycles = [c for per in self.cycles for c in per]
        all_requests = [r for per in self.requests for r in per]
        return {
            "cycles_per_s": round(len(all_cycles) / elapsed, 2),
            "p50_ms": round(_percentile(all_cycles, 50) * 1000, 2),
            "p99_ms": round(_percentile(all_cycles, 99) * 1000, 2),
            "errors": sum(self.errors),
            "cycles": len(all_cycles),
            "seconds": round(elapsed, 2),
            "clients": len(self.keys),
            "request_p50_ms": round(_percentile(all_requests, 50) * 1000, 2),
            "request_p99_ms": round(_percentile(all_requests, 99) * 1000, 2),
            "ran_dry": self.dry.is_set(),
            "latency": "cycle = claim(limit=1) + submit(one RLE mask), loopback HTTP/1.1 keep-alive",
        }


def bench_api(
    *,
    clients: int = 8,
    seconds: float = 20.0,
    tasks: int = 20000,
    startup_timeout: float = 60.0,
) -> dict[str, Any]:
    """Run the benchmark and return the report.

    Args:
        clients: Concurrent annotator clients (threads, one keep-alive connection each).
        seconds: Duration of the measured run.
        tasks: Open tasks in the queue; the run stops early if they run out.
        startup_timeout: Seconds to wait for the server to answer ``/health``.

    Returns:
        ``{"cycles_per_s", "p50_ms", "p99_ms", "errors", ...}`` (cycle latency; per-request
        percentiles and counts as extra keys).
    """
    home = Path(tempfile.mkdtemp(prefix="curator-bench-api-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        settings = load_settings(None, home=home, backbone="classic")
        workspace = Workspace(settings)
        project_id, keys = _seed(workspace, tasks, clients)
        workspace.close()
        port = _free_port()
        server = _spawn_server(home, port)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(server, url, startup_timeout)
        measured = _Clients(url, keys, project_id, _submit_body())
        return measured.report(measured.run(seconds))
    finally:
        _stop(server)
        shutil.rmtree(home, ignore_errors=True)
