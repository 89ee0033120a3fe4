"""The replicas part of ``curator bench scale``: claim+submit cycles/s of the REST queue with 1 and 2
``curator serve`` replicas sharing one PostgreSQL database.

A throwaway PostgreSQL server (:mod:`benchmarks.pgserver`) on 127.0.0.1 gets one database with a
project of synthetic frames and open tasks and one annotator key per client. ``max(counts)``
replicas (``curator serve``, ``serve_jobs`` off: they run no job runner) start on distinct loopback
ports against it, all with one home. ``clients`` client processes each run the driver of
``curator bench api`` (:class:`benchmarks.api._Clients`, one key, one keep-alive connection, looping
*claim one task, submit one mask*); in a turn with ``C`` replicas client ``i`` talks to replica
``i % C`` (with 1, the other replicas stay up, idle). Client processes rather than threads: one
interpreter's lock would cap the clients before the servers.

The counts take turns (``1, 2`` then ``2, 1``, ...) so that a change in the machine's load weighs on
both alike; each count's figure is the median of its turns, and ``turn_ratios`` pairs the runs of one
turn. Before each run the queue is topped up to three times what the fastest run so far would take,
so it never runs dry (``ran_dry`` says if it did). After the last turn the database is checked: each
task claimed at most once (``double_leases``), every claimed task submitted, and as many submitted
tasks as cycles the clients counted.

On one machine the clients, the replicas and PostgreSQL share its cores, so the ratio of 2 replicas
to 1 is not the gain of scaling out (that needs more machines): it shows that replicas on one
database do not slow each other down and that nothing is lost or served twice.

``python -m benchmarks.replicas client PROJECT_ID`` is one client process (its key in
``$CURATOR_BENCH_KEY``): it reads one JSON command a line on stdin and answers each turn with one
``result`` line on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import psutil
from sqlalchemy import Table, func, select

from benchmarks.api import _free_port, _percentile, _stop, _submit_body, _wait_healthy
from benchmarks.pgserver import PostgresServer, find_bin
from curator.config import load_settings
from curator.store.keys import create_key
from curator.store.models import Frame, Project, Task, Video, utcnow
from curator.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
FRAME_SIZE = (64, 64)
#: Open tasks kept before each run, as a multiple of the tasks the fastest run so far took.
HEADROOM = 3.0


class PostgresMissingError(LookupError):
    """PostgreSQL's server binaries are not installed (the replicas part needs them)."""


# --- the database -------------------------------------------------------------------------------


def add_tasks(workspace: Workspace, project_id: int, count: int, tag: str) -> None:
    """Add a synthetic video of ``count`` frames to the project, with one open task per frame.

    Args:
        workspace: The benchmark's workspace.
        project_id: The project.
        count: Frames (and tasks) to add.
        tag: Distinguishes this video from the project's others (its content hash).
    """
    height, width = FRAME_SIZE
    frame_table, task_table = Frame.__table__, Task.__table__
    assert isinstance(frame_table, Table) and isinstance(task_table, Table)
    with workspace.db.session() as session:
        video = Video(
            project_id=project_id, filename=f"{tag}.mp4", source_path="", content_hash=tag, size_bytes=0,
            codec="none", fps=25.0, width=width, height=height, duration=count / 25, decoded_frames=count,
            sample_fps=0.0, sample_stride=1,
        )
        session.add(video)
        session.flush()
        for start in range(0, count, 5000):
            session.execute(frame_table.insert(), [
                {"video_id": video.id, "frame_index": i, "timestamp": i / 25, "width": width, "height": height,
                 "content_hash": f"{tag}-{i}", "blob_path": "bench/frame.jpg"}
                for i in range(start, min(count, start + 5000))
            ])
        frame_ids = session.scalars(select(Frame.id).where(Frame.video_id == video.id)).all()
        now = utcnow()
        session.execute(task_table.insert(), [
            {"project_id": project_id, "frame_id": f, "state": "open", "priority": 0, "reason": "bench",
             "leases": 0, "created_at": now}
            for f in frame_ids
        ])


def _task_count(workspace: Workspace, project_id: int, *where: Any) -> int:
    with workspace.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Task).where(Task.project_id == project_id, *where))
                   or 0)


# --- the processes ------------------------------------------------------------------------------


class Replica:
    """One ``curator serve`` over ``home`` and ``database_url`` on a free loopback port.

    Args:
        home: The home all replicas share (blobs).
        database_url: The shared PostgreSQL database.
        log: Where its output goes.
    """

    def __init__(self, home: Path, database_url: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # serve_jobs off: a replica's job runner polls the database, work the clients do not ask for
        env = {
            **os.environ, "CURATOR_HOME": str(home), "CURATOR_DATABASE_URL": database_url,
            "CURATOR_BACKBONE": "classic", "CURATOR_SEGMENT_WARM": "false", "CURATOR_SERVE_JOBS": "false",
        }
        with log.open("ab") as out:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [sys.executable, "-m", "curator", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "warning"],
                env=env, cwd=REPO, stdout=out, stderr=out,
            )

    def wait_healthy(self, timeout: float) -> None:
        """Block until ``/health`` answers.

        Raises:
            RuntimeError: If the server exits or does not answer within ``timeout`` seconds (with its log).
        """
        try:
            _wait_healthy(self.process, self.url, timeout)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log.read_text(errors='replace')[-3000:]}") from None


class ClientProcess:
    """One annotator in a child process (``python -m benchmarks.replicas client``), run turn by turn.

    Args:
        project_id: The project whose queue it claims from.
        key: Its annotator key.
        log: Where its stderr goes.
    """

    def __init__(self, project_id: int, key: str, log: Path) -> None:
        self.log = log
        env = {
            **os.environ, "CURATOR_BENCH_KEY": key,
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))),
        }
        with log.open("ab") as err:
            self.process: subprocess.Popen[str] = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.replicas", "client", str(project_id)],
                env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            )

    def _line(self, prefix: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):]
        raise RuntimeError(f"a client process ended: {self.log.read_text(errors='replace')[-3000:]}")

    def wait_ready(self) -> None:
        """Block until the child has imported its driver."""
        self._line("ready")

    def start(self, url: str, server_pid: int, seconds: float) -> None:
        """Begin a run of ``seconds`` against the server at ``url``."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"url": url, "server_pid": server_pid, "seconds": seconds}) + "\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, Any]:
        """The run's cycle latencies (s), errors, elapsed seconds and whether the queue ran dry."""
        return dict(json.loads(self._line("result ")))

    def stop(self) -> None:
        """Close its stdin (it exits) and make sure it is gone."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _client_main(project_id: int) -> int:
    """The child side of :class:`ClientProcess`: one :class:`benchmarks.api._Clients` per run."""
    from benchmarks.api import _Clients

    key = os.environ["CURATOR_BENCH_KEY"]
    body = _submit_body()
    out: IO[str] = sys.stdout
    out.write("ready\n")
    out.flush()
    try:
        for line in sys.stdin:
            command = json.loads(line)
            driver = _Clients(command["url"], [key], project_id, body, command["server_pid"])
            driver.run(float(command["seconds"]))
            result = {
                "cycles": driver.cycles[0], "errors": driver.errors[0], "elapsed": driver.elapsed,
                "ran_dry": driver.dry.is_set(),
            }
            out.write("result " + json.dumps(result) + "\n")
            out.flush()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent cleans up
        return 130
    return 0


def _cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User+system CPU seconds of the processes still alive."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _postgres_processes(pg: PostgresServer) -> list[psutil.Process]:
    """The postmaster and its children (the connections' backends), or none if they cannot be read."""
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        postmaster = psutil.Process(int((pg.data / "postmaster.pid").read_text().split()[0]))
        return [postmaster, *postmaster.children(recursive=True)]
    return []


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises ``SystemExit`` (so ``finally`` stops the processes) when this is
    the main thread; elsewhere signals cannot be handled and nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the measurement ----------------------------------------------------------------------------


def _run(
    clients: Sequence[ClientProcess], replicas: Sequence[Replica], seconds: float, pg: PostgresServer
) -> tuple[dict[str, Any], list[float]]:
    """One run: client ``i`` drives ``replicas[i % len(replicas)]`` for ``seconds``; returns its summary
    and every cycle's latency. PostgreSQL's CPU counts the backends alive at both ends of the run."""
    pg_processes = _postgres_processes(pg)
    servers = [psutil.Process(r.process.pid) for r in replicas]
    drivers = [psutil.Process(c.process.pid) for c in clients]
    before = [_cpu_seconds(group) for group in (servers, drivers, pg_processes)]
    for i, client in enumerate(clients):
        replica = replicas[i % len(replicas)]
        client.start(replica.url, replica.process.pid, seconds)
    results = [client.result() for client in clients]
    after = [_cpu_seconds(group) for group in (servers, drivers, pg_processes)]
    latencies = [c for r in results for c in r["cycles"]]
    cycles = len(latencies)
    # each client's cycles over its own clock (the children start a few ms apart)
    rate = sum(len(r["cycles"]) / r["elapsed"] for r in results if r["elapsed"] > 0)
    cpu = {
        name: round((a - b) / cycles * 1000, 3) if cycles else None
        for name, b, a in zip(("servers", "clients", "postgres"), before, after, strict=True)
    }
    return {
        "cycles_per_s": round(rate, 2), "cycles": cycles,
        "p50_ms": round(_percentile(latencies, 50) * 1000, 2), "p99_ms": round(_percentile(latencies, 99) * 1000, 2),
        "errors": sum(int(r["errors"]) for r in results), "ran_dry": any(r["ran_dry"] for r in results),
        "cpu_ms_per_cycle": cpu,
    }, latencies


def replicas_scale(
    scratch: Path,
    *,
    counts: Sequence[int] = (1, 2),
    clients: int = 8,
    seconds: float = 10.0,
    turns: int = 5,
    tasks: int = 10000,
    warmup: float = 2.0,
    startup_timeout: float = 120.0,
    pg: PostgresServer | None = None,
) -> dict[str, Any]:
    """Claim+submit cycles/s with each replica count on one PostgreSQL database (see the module docstring).

    Args:
        scratch: A folder for the replicas' home and the logs.
        counts: Replica counts to measure (``max(counts)`` replicas are started).
        clients: Client processes, spread over the replicas of a run round-robin.
        seconds: Seconds of each run.
        turns: Runs of each count, taking turns; the median is reported.
        tasks: Open tasks seeded at the start (more are added between runs as needed).
        warmup: Unmeasured seconds all clients drive all replicas first (first requests pay lazy imports).
        startup_timeout: Seconds to wait for each replica to answer ``/health``.
        pg: A running PostgreSQL server to make the database on (default: start one, stop it at the end).

    Returns:
        ``C_cycles_per_s``, ``C_p50_ms``, ``C_p99_ms`` and ``C_errors`` per count ``C`` (cycles/s the
        median of the turns, latency percentiles over every cycle of the count); ``ratio`` (the largest
        count over the smallest) and ``turn_ratios``; ``errors``; the database check (``double_leases``,
        ``leased_not_submitted``, ``tasks_leased``, ``tasks_done``, ``cycles_total``, ``consistent``);
        the machine (``cpu_count``, ``loadavg_start``, ``loadavg_end``); and every run under ``runs``.

    Raises:
        PostgresMissingError: Without PostgreSQL's binaries (and no ``pg``).
        RuntimeError: If a replica or a client process fails.
    """
    counts = sorted(set(counts))
    loadavg_start = [round(v, 2) for v in os.getloadavg()]
    own_pg = pg is None
    if pg is None:
        bindir = find_bin()
        if bindir is None or not (bindir / "initdb").exists():
            raise PostgresMissingError(
                "the replicas part needs PostgreSQL's server binaries (apt-get install postgresql, or set "
                "CURATOR_PG_BIN); or run only the other parts with --parts"
            )
        pg = PostgresServer(bindir)
    scratch.mkdir(parents=True, exist_ok=True)
    replicas: list[Replica] = []
    drivers: list[ClientProcess] = []
    workspace: Workspace | None = None
    runs: dict[str, list[dict[str, Any]]] = {str(c): [] for c in counts}
    latencies: dict[str, list[float]] = {str(c): [] for c in counts}
    with _sigterm_as_exit():
        try:
            if own_pg:
                pg.start()
            url = pg.create_database("bench_replicas")
            workspace = Workspace(load_settings(
                None, home=scratch / "home", database_url=url, backbone="classic", segment_warm=False,
            ))
            with workspace.db.session() as session:
                project = Project(name="bench-replicas")
                session.add(project)
                session.flush()
                project_id = int(project.id)
                keys = [create_key(session, "annotator", project_id)[1] for _ in range(clients)]
            add_tasks(workspace, project_id, tasks, "seed")
            added = 1
            replicas = [Replica(scratch / "home", url, scratch / f"replica{i}.log") for i in range(max(counts))]
            drivers = [ClientProcess(project_id, key, scratch / f"client{i}.log") for i, key in enumerate(keys)]
            for replica in replicas:
                replica.wait_healthy(startup_timeout)
            for driver in drivers:
                driver.wait_ready()
            cycles_total = 0
            fastest = 0  # tasks the fastest run took, for topping up the queue
            if warmup > 0:
                warm, _ = _run(drivers, replicas, warmup, pg)
                cycles_total += warm["cycles"]
                fastest = round(warm["cycles"] * seconds / warmup)
            for turn in range(turns):
                for count in counts if turn % 2 == 0 else counts[::-1]:
                    need = round(HEADROOM * max(fastest, 100))
                    available = _task_count(workspace, project_id, Task.state == "open")
                    if available < need:
                        add_tasks(workspace, project_id, need - available, f"more{added}")
                        added += 1
                    run, cycle_latencies = _run(drivers, replicas[:count], seconds, pg)
                    run["turn"] = turn
                    runs[str(count)].append(run)
                    latencies[str(count)].extend(cycle_latencies)
                    cycles_total += run["cycles"]
                    fastest = max(fastest, run["cycles"])
            for driver in drivers:
                driver.stop()
            for replica in replicas:  # no request in flight while the database is checked
                _stop(replica.process)
            report = _report(runs, latencies, counts)
            report.update(_check(workspace, project_id, cycles_total))
        finally:
            for driver in drivers:
                driver.stop()
            for replica in replicas:
                _stop(replica.process)
            if workspace is not None:
                workspace.close()
            if own_pg:
                pg.stop()
    report.update({
        "clients": clients, "seconds": seconds, "turns": turns, "warmup_seconds": warmup,
        "cpu_count": os.cpu_count(), "loadavg_start": loadavg_start,
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
        "cycle": "claim(limit=1) + submit(one RLE mask), loopback HTTP/1.1 keep-alive, one client per process",
        "setup": "replicas: curator serve with serve_jobs off, one home, one PostgreSQL database; client i "
        "talks to replica i % C",
    })
    report["runs"] = runs
    return report


def _report(runs: dict[str, list[dict[str, Any]]], latencies: dict[str, list[float]], counts: list[int]) -> dict[str, Any]:
    """Medians and percentiles of each count, and the ratios of the largest count to the smallest."""
    report: dict[str, Any] = {}
    for count in counts:
        key, samples = str(count), runs[str(count)]
        report[f"{key}_cycles_per_s"] = round(statistics.median(r["cycles_per_s"] for r in samples), 2)
        report[f"{key}_turns_cycles_per_s"] = [r["cycles_per_s"] for r in samples]
        report[f"{key}_p50_ms"] = round(_percentile(latencies[key], 50) * 1000, 2)
        report[f"{key}_p99_ms"] = round(_percentile(latencies[key], 99) * 1000, 2)
        report[f"{key}_errors"] = sum(r["errors"] for r in samples)
    first, last = str(counts[0]), str(counts[-1])
    report["ratio"] = (
        round(report[f"{last}_cycles_per_s"] / report[f"{first}_cycles_per_s"], 3)
        if report[f"{first}_cycles_per_s"] else None
    )
    report["turn_ratios"] = [
        round(b["cycles_per_s"] / a["cycles_per_s"], 3) if a["cycles_per_s"] else None
        for a, b in zip(runs[first], runs[last], strict=True)
    ]
    report["errors"] = sum(report[f"{c}_errors"] for c in counts)
    report["ran_dry"] = any(r["ran_dry"] for samples in runs.values() for r in samples)
    return report


def _check(workspace: Workspace, project_id: int, cycles_total: int) -> dict[str, Any]:
    """What the database holds after the runs: each task leased at most once, every leased task
    submitted, as many submitted as the clients counted (warm-up included)."""
    double = _task_count(workspace, project_id, Task.leases > 1)
    leased = _task_count(workspace, project_id, Task.leases >= 1)
    done = _task_count(workspace, project_id, Task.state == "done")
    pending = _task_count(workspace, project_id, Task.state == "leased")
    return {
        "double_leases": double, "leased_not_submitted": pending, "tasks_leased": leased, "tasks_done": done,
        "cycles_total": cycles_total, "tasks_total": _task_count(workspace, project_id),
        "consistent": double == 0 and pending == 0 and leased == done == cycles_total,
    }


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "client":
        raise SystemExit("usage: python -m benchmarks.replicas client PROJECT_ID (key in $CURATOR_BENCH_KEY)")
    raise SystemExit(_client_main(int(sys.argv[2])))
