"""The Ray side of tests/test_ray_worker.py, run in a loopback-only network namespace.

``python tests/ray_scenario.py --out OUT.json --home HOME [--pg BINDIR] CLIP...`` starts a Ray head
and one worker node on 127.0.0.1 (:class:`benchmarks.scale.LocalRayCluster`), a real
``curator worker --ray ADDRESS`` process, then queues an ingest job of the clips (one Ray task per
clip), a propagate job over the project (one task per video) and, with ``--dinov2 WEIGHTS``, a round
(its propagation one task per video, its scoring one per half video), and writes what the project holds
(:func:`benchmarks.scale.dump_project`) with the jobs' results to OUT.json. It then checks that a
cancel reaches the Ray tasks: an ingest of a longer clip is cancelled once its progress shows in the
job row, and nothing of it is stored. With ``--pg``, the database is a PostgreSQL server started here,
inside the namespace (tests/pg.py), else SQLite under HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.scale import (  # noqa: E402  (the checkout goes on sys.path first)
    LocalRayCluster,
    dump_project,
    label_shot_starts,
    loopback_only,
    make_clips,
    run_job,
    wait_for_cpus,
)
from curator.config import Settings, load_settings  # noqa: E402
from curator.workspace import Workspace  # noqa: E402

#: The settings both runs use, as ``CURATOR_*`` variables (the worker process reads them).
SCENARIO_ENV = {
    "CURATOR_BACKBONE": "classic",
    "CURATOR_MAX_SIDE": "160",
    "CURATOR_SAMPLE_FPS": "0",
    "CURATOR_SAMPLE_STRIDE": "1",
    "CURATOR_JOB_POLL_SECONDS": "0.2",
    "CURATOR_RUNNER_HEARTBEAT_SECONDS": "0.5",
    "CURATOR_PREANNOTATE": "false",
    "CURATOR_SEGMENT_WARM": "false",
}


#: The round the scenario runs when DINOv2 weights are given: 30-frame videos cut into two
#: scoring parts each.
ROUND_PARAMS = {"steps": 6, "short_side": 56, "propagator": "flow", "budget": 3, "seed": 3, "part_frames": 16}


def scenario_settings(home: Path, database_url: str = "", dinov2: Path | None = None) -> Settings:
    """The scenario's settings with ``home``, ``database_url`` (empty: SQLite under ``home``) and
    the DINOv2 weights a round needs (``None``: no round)."""
    values = {k[len("CURATOR_") :].lower(): v for k, v in SCENARIO_ENV.items()}
    if dinov2 is not None:
        values["backbone_checkpoint"] = str(dinov2)
    return load_settings(None, home=home, database_url=database_url, **values)


def run_scenario(
    workspace: Workspace, clips: list[Path], submit: object = None, ingest_part_frames: int | None = None
) -> dict[str, object]:
    """Ingest ``clips`` into project ``ray`` (in parts of ``ingest_part_frames`` decoded frames cut at
    keyframes, when given), give each shot a human mask, propagate the project, then (with DINOv2
    weights in the settings) run a round; returns the project's dump with the jobs' results, the
    ingest parts of each clip under ``ingest_parts`` and, under ``round``, the labels and metrics
    the round left (``submit``: a local runner's, else a worker polls)."""
    from curator.store import repo

    with workspace.db.session() as session:
        project_id = repo.get_or_create_project(session, "ray").id
    params: dict[str, object] = {"paths": [str(c) for c in clips], "backbone": "classic"}
    if ingest_part_frames is not None:
        params["part_frames"] = ingest_part_frames
    ingest, _ = run_job(workspace, "ingest", project_id, params, submit=submit)  # type: ignore[arg-type]
    label_shot_starts(workspace, project_id)
    # part_frames: a video with two shots (a keyframe each) is propagated in two parts
    propagate, _ = run_job(
        workspace, "propagate", project_id, {"propagator": "flow", "part_frames": 10}, submit=submit  # type: ignore[arg-type]
    )
    dump = dump_project(workspace, project_id)
    from curator.store.models import Video

    with workspace.db.session() as session:
        names = {int(v.id): str(v.filename) for v in session.query(Video).filter(Video.project_id == project_id)}
    # video ids (and so the propagate job's order, by id) depend on the order the parallel ingest
    # stored the videos: list the parts by file name instead
    propagate["videos"] = sorted(propagate.get("videos", []), key=lambda v: names[int(v["video_id"])])
    for result in (ingest, propagate):
        for video in result.get("videos", []):
            video.pop("video_id", None)
    dump["ingest_parts"] = [video.pop("parts") for video in ingest["videos"]]
    dump["results"] = {"ingest": ingest, "propagate": propagate}
    if workspace.settings.backbone_checkpoint:
        done, _ = run_job(workspace, "round", project_id, dict(ROUND_PARAMS), submit=submit)  # type: ignore[arg-type]
        after = dump_project(workspace, project_id)
        dump["round"] = {"masks": after["masks"], "metrics": done["metrics"]}
    return dump


def cancel_check(workspace: Workspace, clip: Path) -> dict[str, object]:
    """Queue an ingest of ``clip``, cancel it once the Ray task's progress shows in the job row, and
    return what happened: the job's state, the progress seen and the videos stored (none)."""
    from curator.jobs import create_job, get_job, request_cancel
    from curator.store import repo

    with workspace.db.session() as session:
        project_id = repo.get_or_create_project(session, "cancel").id
        job_id = int(create_job(session, "ingest", project_id=project_id, params={
            "paths": [str(clip)], "backbone": "classic"}).id)
    seen = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with workspace.db.session() as session:
            job = get_job(session, job_id)
            assert job is not None
            if job.state == "running" and (job.progress_done or 0) > 0:
                seen = [job.progress_done, job.progress_total]
                request_cancel(session, job_id)
                break
            if job.state != "queued" and job.state != "running":
                break
        time.sleep(0.02)
    while time.monotonic() < deadline:
        with workspace.db.session() as session:
            job = get_job(session, job_id)
            assert job is not None
            if job.state not in ("queued", "running"):
                break
        time.sleep(0.05)
    with workspace.db.session() as session:
        (_, videos, frames), = repo.project_counts(session, [project_id])
    return {"state": job.state, "progress_seen": seen, "videos": videos, "frames": frames}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--pg", type=Path, default=None, help="PostgreSQL binaries: start a server here")
    parser.add_argument("--dinov2", type=Path, default=None, help="DINOv2 weights: run a round too")
    parser.add_argument("clips", type=Path, nargs="+")
    args = parser.parse_args()
    if not loopback_only():
        raise SystemExit("run this in a loopback-only network namespace (benchmarks.scale.netns_command)")
    pg = None
    if args.pg is not None:
        from tests.pg import PostgresServer

        pg = PostgresServer(args.pg).start()
    database_url = pg.create_database("ray") if pg is not None else ""
    settings = scenario_settings(args.home, database_url, args.dinov2)
    workspace = Workspace(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURATOR_")}
    env.update(SCENARIO_ENV, CURATOR_HOME=str(args.home), CURATOR_DATABASE_URL=database_url)
    if args.dinov2 is not None:
        env["CURATOR_BACKBONE_CHECKPOINT"] = str(args.dinov2)
    started = time.perf_counter()
    try:
        with LocalRayCluster() as cluster:
            cluster.add_worker(cpus=2)
            curator = str(Path(sys.executable).with_name("curator"))
            worker = subprocess.Popen([curator, "worker", "--ray", cluster.address], env=env)
            try:
                import ray

                ray.init(address=cluster.address, namespace="curator-test", log_to_driver=False)
                wait_for_cpus(2)
                nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
                ray.shutdown()
                # the Ray run ingests in parts of 12 frames (clips of 30 with a keyframe every 10),
                # the local one whole: the stored frames must be the same
                dump = run_scenario(workspace, args.clips, ingest_part_frames=12)
                # a clip long enough that the cancel lands mid-ingest even on an idle machine
                long_clip = make_clips(args.home.with_name("cancel-clip"), 1, 1500, width=640)[0]
                dump["cancel"] = cancel_check(workspace, long_clip)
                dump["ray_nodes"] = nodes
            finally:
                worker.send_signal(signal.SIGTERM)
                dump_code = worker.wait(timeout=120)
        dump["worker_exit"] = dump_code
        dump["seconds"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(dump))
    finally:
        workspace.close()
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
