"""``curator bench api``: claim+submit cycles per second and latency of the labelling queue on loopback,
beside a bare FastAPI + SQLAlchemy reference doing the same writes, in the same run.

A throwaway home gets a project with synthetic frames and ``tasks`` open tasks, and one annotator key
per client; ``curator serve`` runs it in a child process (so the server and the clients do not share
one interpreter lock); ``clients`` threads with keep-alive connections each loop *claim one task,
submit one mask* for ``seconds``. A cycle's latency is from sending the claim to receiving the
submission's answer.

Two more homes seeded the same way are served by the bare apps of :mod:`benchmarks.api_reference`
(the same engine settings, the same uvicorn defaults, the same writes, no keys or checks): the
``reference`` written the usual way and the ``reference_tuned`` written for speed, driven by the same
clients. The servers take turns (``turns`` each, in rotation, ``seconds / turns`` a turn) so that
whatever else the machine runs weighs on all alike. ``ratio`` is curator's cycles/s over the
reference's, ``ratio_tuned`` over the tuned reference's; ``server_cpu_ms_per_cycle`` is the CPU time
each server process used per cycle (its share of the work, less exposed to the machine's other load
than throughput).
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
import psutil
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
    """``curator serve`` over ``home`` on loopback ``port``, in a child process.

    Click-to-segment is not warmed: the clients never click, and its start-up work (model imports)
    would run beside the first turn.
    """
    env = {**os.environ, "CURATOR_HOME": str(home), "CURATOR_BACKBONE": "classic", "CURATOR_SEGMENT_WARM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "curator", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _spawn_reference(variant: str, database_url: str, port: int) -> subprocess.Popen[bytes]:
    """A bare reference app (:mod:`benchmarks.api_reference`) over ``database_url``, in a child process."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.api_reference", variant, database_url, str(port)],
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
        server_pid: The server's process id, whose CPU time each turn is measured.
    """

    def __init__(self, url: str, keys: list[str], project_id: int, body: dict[str, Any], server_pid: int) -> None:
        self.url = url
        self.server = psutil.Process(server_pid)
        self.server_cpu = 0.0
        self.keys = keys
        self.project_id = project_id
        self.body = body
        self.cycles: list[list[float]] = [[] for _ in keys]
        self.requests: list[list[float]] = [[] for _ in keys]
        self.errors = [0] * len(keys)
        self.dry = threading.Event()
        self.start_gate = threading.Barrier(len(keys) + 1)
        self.stop_at = 0.0
        self.elapsed = 0.0

    def run(self, seconds: float) -> float:
        """Start every client at once (new connections), stop after ``seconds`` or when the queue runs
        dry. Runs add up: call it once per turn.

        Returns:
            The seconds the clients ran in all turns so far.
        """
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(len(self.keys))]
        for thread in threads:
            thread.start()
        self.start_gate.wait()  # every connection is open
        cpu = self.server.cpu_times()
        began = time.perf_counter()
        self.stop_at = began + seconds
        self.start_gate.wait()
        for thread in threads:
            thread.join()
        self.elapsed += time.perf_counter() - began
        after = self.server.cpu_times()
        self.server_cpu += after.user + after.system - cpu.user - cpu.system
        return self.elapsed

    def _client(self, i: int) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.keys[i]}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as http:
            http.get("/health")  # open the connection before the clock starts
            self.start_gate.wait()
            self.start_gate.wait()  # stop_at is set
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

    def report(self) -> dict[str, Any]:
        """The measurements of every turn (see :func:`bench_api`)."""
        elapsed = self.elapsed
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
            "server_cpu_ms_per_cycle": round(self.server_cpu / len(all_cycles) * 1000, 3) if all_cycles else None,
        }


#: The servers a run measures: curator, then the references (:data:`benchmarks.api_reference.VARIANTS`).
SERVERS = ("curator", "plain", "tuned")


def _serve(home: Path, tasks: int, clients: int, which: str) -> tuple[subprocess.Popen[bytes], str, int, list[str]]:
    """Seed ``home`` and start ``which`` of :data:`SERVERS` over it; returns the server, its URL, the
    project id and the annotator keys."""
    settings = load_settings(None, home=home, backbone="classic")
    workspace = Workspace(settings)
    project_id, keys = _seed(workspace, tasks, clients)
    workspace.close()
    port = _free_port()
    if which == "curator":
        server = _spawn_server(home, port)
    else:
        server = _spawn_reference(which, settings.resolved_database_url, port)
    return server, f"http://127.0.0.1:{port}", project_id, keys


def bench_api(
    *,
    clients: int = 8,
    seconds: float = 20.0,
    tasks: int = 20000,
    turns: int = 2,
    warmup: float = 2.0,
    startup_timeout: float = 60.0,
) -> dict[str, Any]:
    """Run the benchmark and return the report.

    Args:
        clients: Concurrent annotator clients (threads, one keep-alive connection each).
        seconds: Measured seconds per server (curator, the reference, the tuned reference), split
            into ``turns``.
        tasks: Open tasks in each queue; the run stops early if they run out.
        turns: How many times the servers take turns (curator, reference, tuned reference, curator, ...).
        warmup: Unmeasured seconds each server is driven first (first requests pay lazy imports).
        startup_timeout: Seconds to wait for each server to answer ``/health``.

    Returns:
        curator's ``{"cycles_per_s", "p50_ms", "p99_ms", "errors", ...}`` (cycle latency; per-request
        percentiles, counts and ``server_cpu_ms_per_cycle`` as extra keys), ``reference`` and
        ``reference_tuned`` (the same keys for the bare apps), ``ratio`` and ``ratio_tuned``
        (curator's cycles/s over theirs).
    """
    homes = [Path(tempfile.mkdtemp(prefix="curator-bench-api-")) for _ in SERVERS]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        measured = []
        for home, which in zip(homes, SERVERS, strict=True):
            server, url, project_id, keys = _serve(home, tasks, clients, which)
            servers.append(server)
            _wait_healthy(server, url, startup_timeout)
            if warmup > 0:
                _Clients(url, keys, project_id, _submit_body(), server.pid).run(warmup)
            measured.append(_Clients(url, keys, project_id, _submit_body(), server.pid))
        for _ in range(turns):
            for run in measured:
                run.run(seconds / turns)
        ours, plain, tuned = (run.report() for run in measured)
        return {
            **ours,
            "reference": plain,
            "reference_tuned": tuned,
            "ratio": _ratio(ours, plain),
            "ratio_tuned": _ratio(ours, tuned),
            "turns": turns,
            "latency": "cycle = claim(limit=1) + submit(one RLE mask), loopback HTTP/1.1 keep-alive",
            "reference_app": "benchmarks/api_reference.py: FastAPI + SQLAlchemy, the same engine and writes, "
            "no keys or checks; reference written the usual way, reference_tuned for speed",
        }
    finally:
        for server in servers:
            _stop(server)
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)


def _ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float | None:
    return round(ours["cycles_per_s"] / theirs["cycles_per_s"], 3) if theirs["cycles_per_s"] else None
