"""``curator bench scale``: frames/s of ingest+embed and of propagation with 1 and 2 Ray workers, and
claim+submit cycles/s of the REST queue with 1 and 2 API replicas.

A local Ray cluster on 127.0.0.1 (:class:`LocalRayCluster`: a head that runs no tasks, plus one
worker node per CPU measured) runs the jobs of ``curator worker --ray``: this process is the worker
(a :class:`~curator.jobs.ThreadJobRunner` whose handlers dispatch to a
:class:`~curator.jobs.ray_dispatch.RayDispatcher`). For each worker count it times an ``ingest`` job of
several videos (one Ray task per video, embedding with the ``classic`` backbone on the way) and a
``propagate`` job over the project (one task per video), and reports frames/s and the ratio of 2
workers to 1.

Ray registers the machine's other interface addresses even when told ``--node-ip-address 127.0.0.1``,
so the benchmark runs in a loopback-only network namespace (``unshare --net``; a PID namespace too,
so that nothing it started outlives it): :func:`netns_command` wraps a command line in one, and
``curator bench scale`` re-runs itself that way unless ``--no-netns``.

The report's ``replicas`` part (:mod:`benchmarks.replicas`) measures claim+submit cycles/s of the
REST queue with 1 and 2 ``curator serve`` replicas on one PostgreSQL database; its servers listen on
127.0.0.1 only, so it needs no namespace (and works inside one). ``--parts`` picks the parts.

The helpers here (clips cut from the bundled sample, a human mask per shot, a dump of a project's
rows and masks) are shared with ``tests/test_ray_worker.py``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from curator.config import Settings, load_settings
from curator.workspace import Workspace

#: The bundled sample clip (640x272, 250 frames at 25 fps).
SAMPLE = Path(__file__).resolve().parents[1] / "curator" / "data" / "sample.mp4"

#: The parts of the report, in the order they run: the Ray workers (this module) and the API
#: replicas on one PostgreSQL database (:mod:`benchmarks.replicas`).
PARTS = ("ray", "replicas")


# --- a loopback-only network namespace ---------------------------------------------------------


def loopback_only() -> bool:
    """Whether this process's network namespace has no interface but ``lo``."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return [line.split(":")[0].strip() for line in lines] == ["lo"]


def netns_command(argv: Sequence[str]) -> list[str]:
    """``argv`` run in a new network namespace whose only interface is loopback (brought up), and a
    new PID namespace, so every process it starts ends with it.

    Raises:
        FileNotFoundError: Without ``unshare`` or ``ip`` (util-linux, iproute2).
    """
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool!r} is needed for a loopback-only network namespace")
    script = f"ip link set lo up && exec {shlex.join(argv)}"
    return ["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c", script]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- a local Ray cluster -----------------------------------------------------------------------


class LocalRayCluster:
    """A Ray head (no CPUs: it schedules, runs no part) and worker nodes on 127.0.0.1.

    Each ``ray start`` runs in a session of its own, so :meth:`stop` ends exactly the processes of
    this cluster (not another Ray on the machine).

    Args:
        temp_dir: Ray's session folder (short: Ray's socket paths must fit 107 bytes); default a new
            folder under ``/tmp``.
    """

    def __init__(self, temp_dir: Path | None = None) -> None:
        self.temp_dir = temp_dir or Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.workers = 0
        self._sessions: list[int] = []
        self._ray = str(Path(sys.executable).with_name("ray"))

    def _start(self, *args: str, cpu_set: set[int] | None = None) -> None:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        cmd = [self._ray, "start", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *args]

        def pin() -> None:  # in the child: every process of the node inherits the CPU set
            if cpu_set:
                os.sched_setaffinity(0, cpu_set)

        process = subprocess.Popen(
            cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=pin,
        )
        self._sessions.append(process.pid)
        output, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed:\n{output[-3000:]}")

    def start(self) -> LocalRayCluster:
        """Start the head; returns self."""
        self._start(
            "--head", "--port", str(self.port), "--num-cpus", "0", "--include-dashboard=false",
            "--temp-dir", str(self.temp_dir),
        )
        return self

    def add_worker(
        self, cpus: int = 1, resources: dict[str, float] | None = None, cpu_set: set[int] | None = None
    ) -> None:
        """Start one more worker node with ``cpus`` CPUs, custom ``resources`` (node labels) and, with
        ``cpu_set``, its processes pinned to those cores (so a node of one CPU uses one core)."""
        extra = ["--resources", json.dumps(resources)] if resources else []
        self._start("--address", self.address, "--num-cpus", str(cpus), *extra, cpu_set=cpu_set)
        self.workers += 1

    def stop(self) -> None:
        """Kill every process of this cluster's sessions and remove its folder."""
        import psutil

        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = []
            for proc in psutil.process_iter():
                with contextlib.suppress(psutil.Error, OSError):
                    if os.getsid(proc.pid) in self._sessions:
                        proc.send_signal(sig)
                        alive.append(proc)
            psutil.wait_procs(alive, timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_cpus(cpus: int, timeout: float = 120.0) -> None:
    """Block until the connected Ray cluster has ``cpus`` CPUs (a node just started registers late)."""
    import ray

    deadline = time.monotonic() + timeout
    while ray.cluster_resources().get("CPU", 0) < cpus:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Ray cluster did not reach {cpus} CPUs: {ray.cluster_resources()}")
        time.sleep(0.2)


# --- footage, labels and what a project holds --------------------------------------------------


def make_clips(
    dest: Path, count: int, frames: int, *, width: int = 320, source: Path = SAMPLE, gop: int | None = None
) -> list[Path]:
    """``count`` distinct H.264 clips of ``frames`` frames cut from ``source`` (each from another
    offset, wrapping around), scaled to ``width`` pixels wide, with a keyframe at least every
    ``gop`` frames when given (a long file is ingested in parts cut at keyframes)."""
    import av
    import cv2

    with av.open(str(source)) as container:
        images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    height = round(images[0].shape[0] * width / images[0].shape[1] / 2) * 2
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        path = dest / f"clip{k}.mp4"
        start = (k * len(images)) // max(count, 1)
        with av.open(str(path), "w") as out:
            stream = out.add_stream("h264", rate=Fraction(25))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if gop is not None:
                stream.codec_context.gop_size = gop
            for i in range(frames):
                image = np.ascontiguousarray(
                    cv2.resize(images[(start + i) % len(images)], (width, height), interpolation=cv2.INTER_AREA),
                    dtype=np.uint8,
                )
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        paths.append(path)
    return paths


def label_shot_starts(workspace: Workspace, project_id: int) -> int:
    """Give the first stored frame of every shot of the project's videos a human mask (a box in the
    middle, object 1), so propagation has a keyframe in every shot and covers every frame; returns
    the frames labelled."""
    from sqlalchemy import func, select

    from curator.annotate.masks import encode_rle
    from curator.store import repo
    from curator.store.models import Frame, Video

    with workspace.db.session() as session:
        first = (
            select(Frame.shot_id, func.min(Frame.frame_index).label("index"))
            .join(Video, Video.id == Frame.video_id)
            .where(Video.project_id == project_id)
            .group_by(Frame.shot_id)
            .subquery()
        )
        rows = session.execute(
            select(Frame.id, Frame.width, Frame.height)
            .join(first, (Frame.shot_id == first.c.shot_id) & (Frame.frame_index == first.c.index))
        ).all()
        for frame_id, width, height in rows:
            mask = np.zeros((height, width), dtype=np.uint8)
            mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 1
            repo.store_human_masks(session, frame_id, [(1, encode_rle(mask))])
    return len(rows)


def dump_project(workspace: Workspace, project_id: int) -> dict[str, Any]:
    """The project's videos, frames, embeddings and masks, keyed by video file name and frame index
    (not by row ids, which depend on the order videos were stored): JSON-ready, for comparing two
    runs of the same work."""
    from sqlalchemy import func, select

    from curator.store.models import Annotation, Embedding, Frame, Shot, Video

    out: dict[str, Any] = {"videos": {}, "frames": {}, "embeddings": {}, "masks": {}}
    with workspace.db.session() as session:
        for video in session.scalars(select(Video).where(Video.project_id == project_id)):
            shots = session.scalar(select(func.count()).select_from(Shot).where(Shot.video_id == video.id))
            out["videos"][video.filename] = {
                "content_hash": video.content_hash, "decoded_frames": video.decoded_frames, "shots": shots,
                "fps": video.fps, "width": video.width, "height": video.height,
            }
        frames = session.execute(
            select(Frame.id, Video.filename, Frame.frame_index, Frame.content_hash, Frame.width, Frame.height)
            .join(Video, Video.id == Frame.video_id).where(Video.project_id == project_id)
        ).all()
        key = {f.id: f"{f.filename}#{f.frame_index}" for f in frames}
        for f in frames:
            out["frames"][key[f.id]] = {"content_hash": f.content_hash, "width": f.width, "height": f.height}
        for e in session.execute(select(Embedding.frame_id, Embedding.backbone, Embedding.vector).where(
            Embedding.frame_id.in_(list(key))
        )):
            out["embeddings"][f"{key[e.frame_id]}/{e.backbone}"] = base64.b64encode(bytes(e.vector)).decode()
        for a in session.execute(select(
            Annotation.frame_id, Annotation.object_id, Annotation.source, Annotation.rle, Annotation.confidence
        ).where(Annotation.frame_id.in_(list(key)))):
            out["masks"][f"{key[a.frame_id]}/{a.object_id}/{a.source}"] = {
                "rle": a.rle, "confidence": round(float(a.confidence), 6),
            }
    out["digest"] = hashlib.sha256(repr(sorted(out["masks"].items())).encode()).hexdigest()
    return out


# --- running jobs and timing them --------------------------------------------------------------


def run_job(workspace: Workspace, kind: str, project_id: int, params: dict[str, Any], *,
            submit: Callable[[int], None] | None = None, timeout: float = 1800.0) -> tuple[dict[str, Any], float]:
    """Queue a job, hand it to ``submit`` (a runner's; ``None``: a ``curator worker`` polls for it),
    wait for its outcome and return ``(result, seconds from queued to finished)``.

    Raises:
        RuntimeError: If the job ends in any state but ``succeeded``.
        TimeoutError: If it has no outcome within ``timeout`` seconds.
    """
    from curator.jobs import create_job, get_job

    with workspace.db.session() as session:
        job_id = int(create_job(session, kind, project_id=project_id, params=params).id)
    started = time.perf_counter()
    if submit is not None:
        submit(job_id)
    deadline = time.monotonic() + timeout
    while True:
        with workspace.db.session() as session:
            job = get_job(session, job_id)
            assert job is not None
            state, result, error = job.state, job.result, f"{job.error_code}: {job.error}"
        if state in ("succeeded", "failed", "cancelled", "interrupted"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{kind} job {job_id} still {state} after {timeout:g} s")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if state != "succeeded":
        raise RuntimeError(f"{kind} job {job_id} {state}: {error}")
    return dict(result or {}), seconds


def bench_settings(home: Path, max_side: int, checkpoint: Path | None = None) -> Settings:
    """Settings of a benchmark home: SQLite, the ``classic`` backbone, every frame kept, and the
    DINOv2 weights a round needs (``checkpoint``, if given)."""
    return load_settings(
        None, home=home, database_url="", backbone="classic", max_side=max_side, sample_fps=0.0, sample_stride=1,
        job_poll_seconds=0.0, preannotate=False, segment_warm=False,
        backbone_checkpoint=str(checkpoint) if checkpoint is not None else "",
    )


#: The round the ray part times when given DINOv2 weights: a short proxy training (it runs in the
#: worker, between the parts) and small patch grids, so that the parts' share shows.
SCALE_ROUND = {"steps": 20, "short_side": 112, "propagator": "flow", "budget": 5, "seed": 0}


def _time_stages(
    workspace: Workspace,
    submit: Callable[[int], None],
    name: str,
    videos: list[Path],
    with_round: bool = False,
    part_frames: int | None = None,
) -> dict[str, Any]:
    """Ingest+embed ``videos`` into a new project, then propagate it and (``with_round``) run a
    round from a cold derived-data store; frames and seconds of each (``part_frames``: the jobs'
    part size for long videos, default theirs)."""
    from curator.store import repo

    sized = {} if part_frames is None else {"part_frames": part_frames}
    with workspace.db.session() as session:
        project_id = repo.get_or_create_project(session, name).id
    ingest, ingest_s = run_job(
        workspace, "ingest", project_id, {"paths": [str(v) for v in videos], "backbone": "classic", **sized},
        submit=submit,
    )
    label_shot_starts(workspace, project_id)
    propagate, propagate_s = run_job(
        workspace, "propagate", project_id, {"propagator": "flow", **sized}, submit=submit
    )
    timed = {
        "ingest_parts": sum(int(v.get("parts", 1)) for v in ingest["videos"]),
        "ingest_frames": ingest["frames"], "ingest_seconds": round(ingest_s, 3),
        "ingest_fps": round(ingest["frames"] / ingest_s, 2),
        "propagate_frames": propagate["frames"], "propagate_seconds": round(propagate_s, 3),
        "propagate_fps": round(propagate["frames"] / propagate_s, 2),
    }
    if with_round:
        from curator.annotate.derived import CACHE_DIR

        shutil.rmtree(workspace.blobs.path(CACHE_DIR), ignore_errors=True)  # every round starts cold
        done, round_s = run_job(workspace, "round", project_id, {**SCALE_ROUND, **sized}, submit=submit)
        frames = sum(int(v) for v in done["metrics"]["dense"].values())
        timed.update(round_frames=frames, round_seconds=round(round_s, 3), round_fps=round(frames / round_s, 2),
                     round_timings=done["timings"], round_parts=done["metrics"]["parts"])
    return timed


def _node_labels(node: int, counts: Sequence[int]) -> dict[str, float]:
    """Node ``node``'s labels: ``upto_C`` for every worker count ``C`` it belongs to (``node < C``)."""
    return {f"upto_{c}": 1.0 for c in counts if node < c}


def ray_scale(
    videos: list[Path],
    home: Path,
    *,
    workers: Sequence[int] = (1, 2),
    max_side: int = 320,
    repeats: int = 5,
    round_checkpoint: Path | None = None,
    part_frames: int | None = None,
) -> dict[str, Any]:
    """Time ingest+embed and propagation of ``videos`` on a local Ray cluster with each worker count.

    The cluster has ``max(workers)`` worker nodes of one CPU each, each pinned to a core of its own
    (FFmpeg's decoder threads and the ingest pipeline's threads would otherwise spread one node over
    every core); node ``i`` carries the label
    ``upto_C`` for each count ``C > i``, and the runs with ``C`` workers dispatch their parts only to
    nodes labelled ``upto_C``. The counts take turns ``repeats`` times (so a change in the machine's
    load hits them alike) after a warm-up on every node (Ray worker processes import curator and torch
    once); each count's figure is the median of its runs. With ``round_checkpoint`` (DINOv2 weights),
    every run also times a round (:data:`SCALE_ROUND`) from a cold derived-data store. ``part_frames``
    sets the jobs' part size, so that one long video is split into several Ray tasks.

    Returns:
        The ``"ray"`` part of the report: ``workers_C_fps`` (ingest+embed), ``propagate_workers_C_fps``,
        ``ratio`` and ``propagate_ratio`` (the largest count over the smallest), each turn's ratio
        (``turn_ratios``, ``propagate_turn_ratios``) and every run's frames and seconds under ``runs``;
        with a round, ``round_workers_C_fps``, ``round_ratio`` and ``round_turn_ratios`` too.
    """
    import ray

    from curator.jobs import ThreadJobRunner, engine_handlers
    from curator.jobs.ray_dispatch import RayDispatcher

    counts = sorted(set(workers))
    settings = bench_settings(home, max_side, round_checkpoint)
    workspace = Workspace(settings)
    runs: dict[str, list[dict[str, Any]]] = {str(c): [] for c in counts}
    with_round = round_checkpoint is not None
    with LocalRayCluster() as cluster:
        runners: dict[int, ThreadJobRunner] = {}
        try:
            cores = sorted(os.sched_getaffinity(0))
            for node in range(max(counts)):
                cluster.add_worker(cpus=1, resources=_node_labels(node, counts), cpu_set={cores[node % len(cores)]})
            ray.init(address=cluster.address, namespace="curator", log_to_driver=False, configure_logging=False)
            wait_for_cpus(max(counts))
            for c in counts:
                dispatcher = RayDispatcher(cluster.address, settings, resources={f"upto_{c}": 0.001})
                runners[c] = ThreadJobRunner(workspace, engine_handlers(workspace, dispatcher=dispatcher), server=False)
                runners[c].start()
            _time_stages(
                workspace, runners[max(counts)].submit, "warm", videos[: max(counts)], with_round, part_frames
            )
            for turn in range(repeats):
                for c in counts:
                    runs[str(c)].append(
                        _time_stages(workspace, runners[c].submit, f"scale-{c}-{turn}", videos, with_round, part_frames)
                    )
        finally:
            for runner in runners.values():
                runner.shutdown()
            if ray.is_initialized():
                ray.shutdown()
            workspace.close()
    report: dict[str, Any] = {}
    stages = [("ingest_fps", ""), ("propagate_fps", "propagate_")] + ([("round_fps", "round_")] if with_round else [])
    for key, samples in runs.items():
        for stage, prefix in stages:
            report[f"{prefix}workers_{key}_fps"] = round(statistics.median(r[stage] for r in samples), 2)
    first, last = min(counts), max(counts)
    for _, prefix in stages:
        report[f"{prefix}ratio"] = round(
            report[f"{prefix}workers_{last}_fps"] / report[f"{prefix}workers_{first}_fps"], 3
        )
    # each turn's ratio: the two runs were minutes apart at most, so a change in the load hits both
    for stage, prefix in stages:
        report[f"{prefix}turn_ratios"] = [
            round(b[stage] / a[stage], 3) for a, b in zip(runs[str(first)], runs[str(last)], strict=True)
        ]
    report["runs"] = runs
    return report


def run_scale(
    out_dir: Path,
    *,
    workers: Sequence[int] = (1, 2),
    videos: Sequence[Path] | None = None,
    clips: int = 4,
    clip_frames: int = 250,
    clip_width: int = 640,
    max_side: int = 320,
    repeats: int = 5,
    parts: Sequence[str] = PARTS,
    clients: int = 8,
    replica_seconds: float = 10.0,
    round_checkpoint: Path | None = None,
    part_frames: int | None = None,
    clip_gop: int | None = None,
) -> dict[str, Any]:
    """The ``curator bench scale`` report: ``{"ray": ray_scale(...), "replicas": replicas_scale(...)}``
    (the parts asked for) plus what ran it.

    Args:
        out_dir: A scratch folder for the clips and the benchmark homes (removed at the end).
        workers: Ray worker counts to time.
        videos: Videos to ingest (default ``clips`` clips cut from the bundled sample).
        clips: How many clips to cut when no videos are given.
        clip_frames: Frames per clip.
        clip_width: Width of the clips (the sample is 640x272).
        max_side: Stored frames' longer side.
        repeats: Timed runs of each worker count, and of each replica count (taking turns); the
            median is reported.
        parts: Which of :data:`PARTS` to run, in that order.
        clients: Client processes of the replicas part.
        replica_seconds: Seconds of each run of the replicas part.
        round_checkpoint: DINOv2 weights: the ray part times a round too (:func:`ray_scale`).
        part_frames: The jobs' part size for long videos (default theirs): one long video is then
            ingested, propagated and scored by several Ray tasks.
        clip_gop: A keyframe at least every this many frames in the cut clips (long-file ingest
            parts start at keyframes).

    Raises:
        ValueError: If ``parts`` names an unknown part.
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ValueError(f"unknown part(s) {', '.join(unknown) or '(none given)'}; the parts are {', '.join(PARTS)}")
    scratch = Path(tempfile.mkdtemp(prefix="scale-", dir=out_dir))
    setup: dict[str, Any] = {
        "max_side": max_side, "repeats": repeats, "backbone": "classic", "propagator": "flow", "cpus": os.cpu_count(),
        "loadavg_before": [round(v, 2) for v in os.getloadavg()], "loopback_only_netns": loopback_only(),
        "parts": [p for p in PARTS if p in parts], "part_frames": part_frames, "clip_gop": clip_gop,
    }
    report: dict[str, Any] = {}
    try:
        if "ray" in parts:
            files = list(videos) if videos else make_clips(
                scratch / "clips", clips, clip_frames, width=clip_width, gop=clip_gop
            )
            setup["videos"] = [Path(v).name for v in files]
            report["ray"] = ray_scale(
                [Path(v).resolve() for v in files], scratch / "home", workers=workers, max_side=max_side,
                repeats=repeats, round_checkpoint=round_checkpoint, part_frames=part_frames,
            )
        if "replicas" in parts:
            from benchmarks.replicas import replicas_scale

            report["replicas"] = replicas_scale(
                scratch / "replicas", clients=clients, seconds=replica_seconds, turns=repeats
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    setup["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    report["setup"] = setup
    return report

