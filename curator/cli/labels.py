"""Labelling from the shell: the queue (tasks, claim, submit, release, reopen, reject, preannotate),
mask import, propagation, export, "frames like this one", and jobs. Each command is a thin call into :class:`curator.project.Project`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from curator.cli.common import ConfigOpt, HomeOpt, ProjectOpt, fail, open_project, progress_bars

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _emit(value: Any, as_json: bool, text: str) -> None:
    typer.echo(json.dumps(value, indent=2, default=str) if as_json else text)


def tasks(project: ProjectOpt = "default", as_json: JsonOpt = False, home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Show the labelling queue: task counts by state (open, leased, expired, done)."""
    with open_project(home, config, project) as p:
        counts = p.tasks()
    _emit(counts, as_json, "  ".join(f"{k}: {v}" for k, v in counts.items()))


def claim(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Tasks to lease.", min=1)] = 1,
    lease_seconds: Annotated[float | None, typer.Option(help="Lease length (default the settings').")] = None,
    project: ProjectOpt = "default",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Lease up to LIMIT open tasks and print them with the path of each frame's image.

    Label a task by writing an indexed PNG of the frame's size (0 background, k object k) and
    passing it to `curator submit TASK_ID FILE.png`.
    """
    from curator.store import repo

    with open_project(home, config, project) as p:
        leases = p.claim(limit, lease_seconds=lease_seconds)
        rows = []
        with p.workspace.db.session() as session:
            for lease in leases:
                found = repo.frame_project(session, lease.frame_id)
                assert found is not None
                frame = found[0]
                rows.append({
                    "task_id": lease.id, "frame_id": lease.frame_id, "video_id": lease.video_id,
                    "frame_index": lease.frame_index, "width": frame.width, "height": frame.height,
                    "reason": lease.reason, "image": str(p.workspace.blobs.path(frame.blob_path)),
                })
    if not rows and not as_json:
        typer.echo("no open tasks")
        return
    _emit(rows, as_json, "\n".join(
        f"task {r['task_id']}: frame {r['frame_id']} (video {r['video_id']}, index {r['frame_index']}, "
        f"{r['width']}x{r['height']}, {r['reason']})  {r['image']}" for r in rows
    ))


def submit(
    task_id: Annotated[int, typer.Argument(help="A task you claimed.")],
    mask: Annotated[Path, typer.Argument(help="Indexed PNG of the frame's size: 0 background, k object k.")],
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Submit the masks of a claimed task from an indexed (palette or 8-bit grey) PNG."""
    with open_project(home, config, project) as p:
        stored = p.submit(task_id, mask)
    typer.echo(f"task {task_id}: {stored} masks stored")


def release(
    task_id: Annotated[int, typer.Argument(help="A task you claimed.")],
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Give a claimed task back to the queue."""
    with open_project(home, config, project) as p:
        if not p.release(task_id):
            raise fail(f"task {task_id} is not leased by you")
    typer.echo(f"task {task_id} released")


def reopen(
    task_id: Annotated[int, typer.Argument(help="A done task.")],
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Put a done task back in the queue; its human masks stay as its pre-annotation until resubmitted."""
    with open_project(home, config, project) as p:
        if not p.reopen(task_id):
            raise fail(f"task {task_id} is not done")
    typer.echo(f"task {task_id} reopened")


def reject(
    task_id: Annotated[int, typer.Argument(help="A done task.")],
    note: Annotated[str, typer.Option("--note", help="Why, for the annotator (shown with the task).")],
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Reject a submission back into the queue with a note; its masks become `rejected` (kept as the
    task's pre-annotation, no longer exported, propagated or trained on)."""
    if not note.strip():
        raise fail("--note must say why")
    with open_project(home, config, project) as p:
        if not p.reject(task_id, note):
            raise fail(f"task {task_id} is not done")
    typer.echo(f"task {task_id} rejected")


def preannotate(
    task: Annotated[list[int] | None, typer.Option("--task", help="A task id (repeat; default every open task).")] = None,
    propagator: Annotated[str | None, typer.Option(help="Propagator (default the settings').")] = None,
    project: ProjectOpt = "default",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Give queued tasks a pre-annotation: masks propagated from their video's human keyframes, where
    their frame has none yet (selections and rounds do this by themselves)."""
    with open_project(home, config, project) as p, progress_bars() as bars:
        result = p.preannotate(task or None, propagator=propagator, progress=bars)
    _emit(result, as_json, f"{result['pre_annotated']} of {result['tasks']} tasks pre-annotated"
          + (f" ({result['reason']})" if result["reason"] else ""))


def import_(
    source: Annotated[
        Path, typer.Argument(help="A DAVIS folder of PNG masks, a COCO .json file or a Label Studio JSON export.")
    ],
    video: Annotated[str | None, typer.Option(help="Video id or file name for a flat PNG folder.")] = None,
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Store existing masks (a DAVIS PNG folder, a COCO file or a Label Studio export) as human labels.

    A DAVIS folder holds <index>.png or <video>/<index>.png (or an export's Annotations/); a COCO
    instance file has RLE or polygon segmentations; a Label Studio JSON export (of tasks from
    `curator export --format labelstudio`) has brush masks. Frames are matched by video and frame index and
    their queued tasks are marked done. One bad mask and nothing is stored.
    """
    with open_project(home, config, project) as p:
        report = p.import_masks(source, video=video)
    typer.echo(f"imported {report.masks} masks on {report.frames} frames")
    if report.unmatched:
        typer.secho(
            f"{len(report.unmatched)} masks matched no stored frame, e.g. {report.unmatched[0]}",
            fg=typer.colors.YELLOW, err=True,
        )


def propagate(
    video: Annotated[int | None, typer.Option(help="Video id (default: every video with human masks).")] = None,
    scope: Annotated[str, typer.Option(help="video (every frame) or between (first to last keyframe).")] = "video",
    propagator: Annotated[
        str | None, typer.Option(help="flow, feature, flow+feature, sam2 or auto (default the settings').")
    ] = None,
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Spread human masks to the other frames of each video; stored as `propagated` with a confidence."""
    if scope not in ("video", "between"):
        raise fail(f"--scope must be 'video' or 'between', got {scope!r}")
    with open_project(home, config, project) as p, progress_bars() as bars:
        results = p.propagate(video, scope=scope, propagator=propagator, progress=bars)
    if not results:
        typer.echo("no video has human masks yet; label or import some first")
    for r in results:
        typer.echo(
            f"video {r['video_id']}: {r['frames']} frames from {r['keyframes']} keyframes, {r['masks']} masks "
            f"({r['propagator']})"
        )


def export(
    format: Annotated[
        str, typer.Option("--format", "-f", help="coco, davis (zip), ytvis, datumaro (zip, tracks; for CVAT) or labelstudio.")
    ] = "coco",
    include: Annotated[str, typer.Option(help="human (human masks only) or all (best source per frame).")] = "human",
    out: Annotated[Path, typer.Option("--out", "-o", help="File, or folder for <project>-<format>-<include>.<ext>.")] = Path("."),
    images: Annotated[
        bool | None,
        typer.Option("--images/--no-images", help="With the images, a zip in the tool's layout (the default but for "
                     "labelstudio, whose default is its tasks JSON); --no-images: coco, ytvis and labelstudio as JSON."),
    ] = None,
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write the labelled frames as COCO (RLE), a DAVIS zip, YouTube-VIS, a Datumaro zip (one track per
    object, for CVAT) or Label Studio tasks (brush masks; the queue's frames too)."""
    from curator.export import EXPORTERS

    if format not in EXPORTERS:
        raise fail(f"unknown export format {format!r}; valid: {', '.join(EXPORTERS)}")
    with open_project(home, config, project) as p:
        path = p.export(format, include=include, dest=out, images=images)
    typer.echo(str(path))


def similar(
    frame_id: Annotated[int, typer.Argument(help="A frame id (see `curator select` or `curator claim`).")],
    k: Annotated[int, typer.Option("-k", help="Neighbours to list.", min=1, max=1000)] = 10,
    project: ProjectOpt = "default",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the frames most like FRAME_ID by the project's FAISS index (cosine similarity)."""
    with open_project(home, config, project) as p:
        found = p.similar(frame_id, k)
    _emit(
        [{"frame_id": f, "similarity": s} for f, s in found], as_json,
        "\n".join(f"frame {f:<7} similarity {s:.4f}" for f, s in found),
    )


def jobs(
    limit: Annotated[int, typer.Option(help="Newest jobs to list.", min=1)] = 20,
    project: ProjectOpt = "default",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the project's jobs (REST and service work): kind, state, progress, error code."""
    with open_project(home, config, project) as p:
        rows = p.jobs(limit)
    _emit(rows, as_json, "\n".join(
        f"job {r['id']:<5} {r['kind']:<10} {r['state']:<12} {r['done']}/{r['total'] or '?'}"
        + (f"  {r['error']}" if r["error"] else "") for r in rows
    ) or "no jobs")
