"""The ``curator`` command line (typer): ingest, embed, select, projects, demo, bench.

The CLI is the composition root: it is the one engine module that reaches ``curator_selectors``
(and, for ``serve``, ``api``), importing them lazily inside the commands so ``curator --help`` is fast.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from curator.config import Settings, load_settings

app = typer.Typer(
    name="curator",
    help="Active-learning curation for video segmentation datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks; each writes a JSON report.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data folder (database and blobs); default $CURATOR_HOME or ./curator-data.")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML settings file (see configs/default.yaml).")]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name.")]
BackboneOpt = Annotated[
    str | None, typer.Option("--backbone", help="Embedding backbone: dinov2_vits14, classic, or auto.")
]
CheckpointOpt = Annotated[
    str | None,
    typer.Option("--checkpoint", help="Backbone weights file; default $CURATOR_BACKBONE_CHECKPOINT, then the hub."),
]


def _settings(home: Path | None, config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, home=home, **overrides)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn expected failures into one red line and exit code 2 instead of a traceback."""
    from curator.embed import BackboneWeightsError
    from curator.ingest import VideoDecodeError
    from curator.registry import UnknownNameError

    try:
        yield
    except (VideoDecodeError, BackboneWeightsError, UnknownNameError, LookupError, ValueError) as exc:
        raise _fail(str(exc)) from None


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """A rich progress display with one bar per stage; yields a ``ProgressCallback``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def _backbone(settings: Settings, name: str | None, checkpoint: str | None) -> Any:
    from curator.embed import create_backbone

    choice = create_backbone(
        name or settings.backbone, checkpoint or settings.backbone_checkpoint or None, settings.device
    )
    if choice.fell_back:
        typer.secho(
            "Notice: DINOv2 weights could not be resolved; using the weight-free 'classic' embedder.\n"
            f"  Why: {choice.fell_back}",
            fg=typer.colors.YELLOW,
            err=True,
        )
    return choice.backbone


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Video files (any container PyAV reads).")],
    project: ProjectOpt = "default",
    fps: Annotated[float | None, typer.Option(help="Target candidate frames per second (0 = all).")] = None,
    stride: Annotated[int | None, typer.Option(help="Keep every n-th decoded frame.")] = None,
    backbone: BackboneOpt = None,
    checkpoint: CheckpointOpt = None,
    embed: Annotated[bool, typer.Option("--embed/--no-embed", help="Embed frames while ingesting.")] = True,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Decode videos, detect shots, store sampled frames, and embed them into the project index.

    Re-ingesting a file already in the project is a no-op. A file that is not a decodable video is
    rejected with a message and nothing is stored; the other files still go in.
    """
    from curator.ingest import VideoDecodeError, ingest_video
    from curator.store import repo
    from curator.workspace import Workspace

    with _user_errors():
        settings = _settings(home, config, sample_fps=fps, sample_stride=stride)
        model = _backbone(settings, backbone, checkpoint) if embed else None
        workspace = Workspace(settings)
        with workspace.db.session() as session:
            project_id = repo.get_or_create_project(session, project).id
        failures = 0
        for path in paths:
            try:
                with _progress() as progress:
                    result = ingest_video(workspace, project_id, path, backbone=model, progress=progress)
            except VideoDecodeError as exc:
                failures += 1
                typer.secho(f"rejected {path}: {exc}", fg=typer.colors.RED, err=True)
                continue
            if result.created:
                typer.echo(
                    f"{path}: video {result.video_id}, {result.decoded_frames} frames decoded, "
                    f"{result.frames} stored, {result.shots} shots, {result.embedded} embedded"
                    + (f" ({result.backbone})" if result.backbone else "")
                )
            else:
                typer.echo(f"{path}: already ingested as video {result.video_id} ({result.frames} frames); skipped")
        workspace.close()
        if failures:
            raise typer.Exit(2)


@app.command()
def embed(
    project: ProjectOpt = "default",
    backbone: BackboneOpt = None,
    checkpoint: CheckpointOpt = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Embed every stored frame of a project that has no embedding under the backbone yet."""
    from curator.embed.project import embed_project
    from curator.store import repo
    from curator.workspace import Workspace

    with _user_errors():
        settings = _settings(home, config)
        model = _backbone(settings, backbone, checkpoint)
        workspace = Workspace(settings)
        with workspace.db.session() as session:
            project_id = repo.get_project(session, project).id
        with _progress() as progress:
            done = embed_project(workspace, project_id, model, progress=progress)
        typer.echo(f"embedded {done} frames with {model.name}")
        workspace.close()


@app.command()
def select(
    budget: Annotated[int, typer.Option("--budget", "-n", help="Frames to pick.", min=0)],
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Selector name.")] = "kcenter",
    project: ProjectOpt = "default",
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    backbone: Annotated[str | None, typer.Option(help="Use embeddings of this backbone (default: best available).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the picks as JSON.")] = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Pick keyframes for labelling with a registered selector; the selection is stored."""
    from curator.selection import run_selection
    from curator.store import repo
    from curator.workspace import Workspace
    from curator_selectors import create_selector

    with _user_errors():
        settings = _settings(home, config, seed=seed)
        selector = create_selector(strategy)
        workspace = Workspace(settings)
        with workspace.db.session() as session:
            project_id = repo.get_project(session, project).id
        selection_id, picks = run_selection(
            workspace, project_id, selector, budget, seed=settings.seed, backbone=backbone
        )
        workspace.close()
    if as_json:
        typer.echo(json.dumps({"selection_id": selection_id, "picks": [p.__dict__ for p in picks]}, indent=2))
        return
    typer.echo(f"selection {selection_id}: {len(picks)} frames by {strategy}")
    for p in picks:
        typer.echo(
            f"  #{p.rank + 1:<3} frame {p.frame_id:<7} video {p.video_id:<4} t={p.timestamp:8.3f}s "
            f"utility={p.utility:.4f} ({p.reason})  {p.blob_path}"
        )


@app.command()
def projects(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List projects with their video and frame counts."""
    from sqlalchemy import func, select

    from curator.store.models import Frame, Project, Video
    from curator.workspace import Workspace

    workspace = Workspace(_settings(home, config))
    with workspace.db.session() as session:
        rows = session.execute(
            select(Project.name, func.count(func.distinct(Video.id)), func.count(Frame.id))
            .outerjoin(Video, Video.project_id == Project.id)
            .outerjoin(Frame, Frame.video_id == Video.id)
            .group_by(Project.id)
            .order_by(Project.name)
        ).all()
    for name, videos, frames in rows:
        typer.echo(f"{name}: {videos} videos, {frames} frames")
    workspace.close()


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("demo-report"),
    budget: Annotated[int, typer.Option(help="Keyframes to pick.", min=1)] = 8,
    strategy: Annotated[str, typer.Option(help="Selector name.")] = "kcenter",
    video: Annotated[Path | None, typer.Option(help="Use this clip instead of the bundled sample.")] = None,
    checkpoint: CheckpointOpt = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the whole slice on a short real sample clip and write a contact sheet and a JSON summary.

    The backbone is ``auto``: DINOv2 when its weights resolve (``--checkpoint`` or
    ``CURATOR_BACKBONE_CHECKPOINT``, else the hub), otherwise the weight-free ``classic`` embedder.
    """
    from curator.demo import run_demo
    from curator_selectors import create_selector

    with _user_errors():
        settings = _settings(home, config)
        selector = create_selector(strategy)
        with _progress() as progress:
            summary = run_demo(
                settings,
                selector,
                out,
                budget=budget,
                video=video,
                checkpoint=checkpoint,
                progress=progress,
                notice=lambda m: typer.secho(m, fg=typer.colors.YELLOW, err=True),
            )
    typer.echo(
        f"demo: {summary['video']['candidate_frames']} frames, {len(summary['shots'])} shots, "
        f"backbone {summary['backbone']}, {len(summary['picks'])} keyframes by {strategy} "
        f"covering {summary['shots_covered']} shots"
    )
    typer.echo(f"wrote {out / 'contact_sheet.png'} and {out / 'summary.json'}")


@bench_app.command("ingest")
def bench_ingest(
    video: Annotated[Path, typer.Argument(help="Video to benchmark.")],
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")],
    backbone: BackboneOpt = "auto",
    checkpoint: CheckpointOpt = None,
    batch_size: Annotated[int, typer.Option(help="Frames per inference batch.")] = 16,
    max_side: Annotated[int, typer.Option(help="Frames are resized so the longer side is at most this.")] = 1280,
) -> None:
    """Decode-only, embed-only and full-pipeline frames/s in one run, with peak RSS."""
    from curator.bench.ingest import bench_ingest as run

    with _user_errors():
        settings = load_settings(None, backbone=backbone)
        model = _backbone(settings, backbone, checkpoint)
        report = run(video, model, batch_size=batch_size, max_side=max_side)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    typer.echo(json.dumps(report, indent=2))


def main() -> None:
    """Entry point for ``python -m curator``."""
    app()
