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
    strategy: Annotated[str, typer.Option(help="Selector name.")] = "curator",
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


keys_app = typer.Typer(help="API keys of the REST service (stored hashed; shown once).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind; default from settings (api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default from settings (api_port).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the REST service (one process: it owns the job runner of its database)."""
    import uvicorn

    from api import create_app

    settings = _settings(home, config, api_host=host, api_port=port)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level=log_level)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="admin, annotator or viewer.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project name or id; none = every project (global key).")
    ] = None,
    name: Annotated[str, typer.Option(help="A note saying whose key this is.")] = "",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from api.auth import create_key
    from curator.store import repo
    from curator.store.models import Project
    from curator.workspace import Workspace

    with _user_errors():
        workspace = Workspace(_settings(home, config))
        with workspace.db.session() as session:
            project_id = None
            if project is not None:
                row = session.get(Project, int(project)) if project.isdigit() else None
                project_id = row.id if row is not None else repo.get_project(session, project).id
            key, secret = create_key(session, role, project_id, name)
            scope = "all projects" if project_id is None else f"project {project_id}"
            typer.echo(secret)
            typer.secho(f"key {key.id}: role {role} on {scope}; store it now, it cannot be shown again",
                        fg=typer.colors.YELLOW, err=True)
        workspace.close()


@keys_app.command("list")
def keys_list(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List keys (id, prefix, role, project, state); secrets are never shown."""
    from api.auth import list_keys
    from curator.workspace import Workspace

    workspace = Workspace(_settings(home, config))
    with workspace.db.session() as session:
        for key in list_keys(session):
            scope = "all" if key.project_id is None else f"project {key.project_id}"
            state = "revoked" if key.revoked_at is not None else "active"
            typer.echo(f"{key.id}\t{key.prefix}...\t{key.role}\t{scope}\t{state}\t{key.name}")
    workspace.close()


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="Key id (see `curator keys list`).")],
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    from api.auth import revoke_key
    from curator.workspace import Workspace

    workspace = Workspace(_settings(home, config))
    with workspace.db.session() as session:
        done = revoke_key(session, key_id)
    workspace.close()
    if not done:
        raise _fail(f"no active key with id {key_id}")
    typer.echo(f"revoked key {key_id}")


@bench_app.command("api")
def bench_api(
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")],
    clients: Annotated[int, typer.Option(help="Concurrent annotator clients.", min=1)] = 8,
    seconds: Annotated[float, typer.Option(help="How long to run.", min=1)] = 20.0,
    tasks: Annotated[int, typer.Option(help="Tasks in the queue (enough never to run dry).", min=1)] = 20000,
) -> None:
    """Claim+submit cycles per second and p50/p99 cycle latency against a local server on loopback."""
    from api.auth import create_key
    from curator.bench.api import bench_api as run

    report = run(create_key, clients=clients, seconds=seconds, tasks=tasks)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("keyframes")
def bench_keyframes(
    davis: Annotated[Path, typer.Option("--davis", help="DAVIS-layout folder (JPEGImages/480p, Annotations/480p).")],
    out: Annotated[Path, typer.Option("--out", help="JSON report path (a PNG plot is written beside it).")] = Path(
        "bench-out/keyframes.json"
    ),
    budgets: Annotated[str, typer.Option(help="Comma-separated keyframe budgets.")] = "1,2,4,8",
    strategies: Annotated[str, typer.Option(help="Comma-separated selector names.")] = "uniform",
    propagator: Annotated[
        str | None, typer.Option(help="Propagator name (default: the default CPU propagator).")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="DINOv2 weights for the pool and feature propagators.")
    ] = None,
    sequences: Annotated[str | None, typer.Option(help="Comma-separated sequence names (default all).")] = None,
    sam2_config: Annotated[str | None, typer.Option("--sam2-config", help="SAM 2 Hydra config name.")] = None,
    sam2_checkpoint: Annotated[str | None, typer.Option("--sam2-checkpoint", help="SAM 2 checkpoint.")] = None,
    sam2_hub: Annotated[str | None, typer.Option("--sam2-hub", help="SAM 2 hub id, e.g. facebook/sam2.1-hiera-tiny.")] = None,
    sam2_image_size: Annotated[int | None, typer.Option("--sam2-image-size", help="Override SAM 2's input size.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the selectors' random generator.")] = 0,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Reuse per-sequence patch features across runs.")
    ] = None,
) -> None:
    """J&F of propagated masks against the number of keyframes picked by each strategy (DAVIS)."""
    from curator.annotate import DEFAULT_CPU_PROPAGATOR
    from curator.annotate.sam2_backend import SAM2WeightsError
    from curator.bench.keyframes import format_table, plot_report, run_keyframe_bench

    name = propagator or DEFAULT_CPU_PROPAGATOR
    options: dict[str, Any] = {}
    if name == "sam2":
        options = {"checkpoint": sam2_checkpoint, "hub_id": sam2_hub, "image_size": sam2_image_size}
        if sam2_config:
            options["config"] = sam2_config
    try:
        with _user_errors():
            report = run_keyframe_bench(
                davis,
                [int(b) for b in budgets.split(",") if b.strip()],
                [s.strip() for s in strategies.split(",") if s.strip()],
                name,
                checkpoint=checkpoint,
                sequences=[s.strip() for s in sequences.split(",")] if sequences else None,
                propagator_options=options,
                seed=seed,
                log=typer.echo,
                cache_dir=cache_dir,
            )
    except (SAM2WeightsError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    plot = out.with_suffix(".png")
    plot_report(report, plot)
    typer.echo(format_table(report))
    typer.echo(
        f"{report['propagator']}: {report['cold_seconds_per_frame']:.3f} s/frame cold, "
        f"{report['seconds_per_frame']:.3f} s/frame with cached flow/features; wrote {out} and {plot}"
    )


@bench_app.command("loop")
def bench_loop(
    davis: Annotated[Path, typer.Option("--davis", help="DAVIS-layout folder (JPEGImages/480p, Annotations/480p).")],
    out: Annotated[Path, typer.Option("--out", help="JSON report path (a PNG plot is written beside it).")] = Path(
        "bench-out/loop.json"
    ),
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds per strategy.", min=1)] = 5,
    per_round: Annotated[int, typer.Option("--per-round", help="Frames labelled per round, across all videos.", min=1)] = 10,
    strategies: Annotated[str, typer.Option(help="Comma-separated selector names.")] = "uniform,random,curator",
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="DINOv2 weights (default: $CURATOR_BACKBONE_CHECKPOINT)."),
    ] = None,
    propagator: Annotated[
        str | None, typer.Option(help="Propagator name (default: the default CPU propagator).")
    ] = None,
    sequences: Annotated[str | None, typer.Option(help="Comma-separated sequence names (default all).")] = None,
    selector_params: Annotated[
        str | None,
        typer.Option("--selector-params", help='JSON settings per strategy, e.g. \'{"curator": {"time_weight": 0.9}}\'.'),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Proxy training steps per round.", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the selectors and the proxy model.")] = 0,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Reuse per-sequence patch features and embeddings across runs.")
    ] = None,
) -> None:
    """A simulated labelling campaign: J&F of the dense labels against annotated frames per strategy (DAVIS).

    Every sequence of the folder is one video of a single project. Each round a strategy picks
    ``--per-round`` frames across all videos, a perfect annotator labels them with the ground truth,
    and a retrain round (propagate, train the proxy, score, densify) runs.
    """
    from dataclasses import replace as dc_replace

    from curator.annotate import DEFAULT_CPU_PROPAGATOR
    from curator.bench.loop import format_loop_table, plot_loop, run_loop_bench
    from curator.train.loop import RoundConfig

    weights = checkpoint or load_settings().backbone_checkpoint
    if not weights:
        raise _fail("the loop benchmark needs DINOv2 weights: pass --checkpoint or set CURATOR_BACKBONE_CHECKPOINT")
    try:
        params = json.loads(selector_params) if selector_params else {}
    except json.JSONDecodeError as exc:
        raise _fail(f"--selector-params is not valid JSON: {exc}") from None
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise _fail('--selector-params must map strategy names to settings, e.g. {"curator": {"time_weight": 0.9}}')
    config = RoundConfig(short_side=336)
    if steps is not None:
        config = dc_replace(config, proxy=dc_replace(config.proxy, steps=steps))
    with _user_errors():
        report = run_loop_bench(
            davis,
            rounds,
            per_round,
            [s.strip() for s in strategies.split(",") if s.strip()],
            weights,
            propagator=propagator or DEFAULT_CPU_PROPAGATOR,
            sequences=[s.strip() for s in sequences.split(",")] if sequences else None,
            seed=seed,
            config=config,
            selector_params=params,
            cache_dir=cache_dir,
            log=typer.echo,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    plot = out.with_suffix(".png")
    plot_loop(report, plot)
    typer.echo(format_loop_table(report))
    typer.echo(f"wrote {out} and {plot}")


@bench_app.command("allocation")
def bench_allocation(
    report: Annotated[Path, typer.Option("--report", help="JSON report of `curator bench keyframes`.")],
    frames: Annotated[str, typer.Option("--frames", help="Comma-separated totals of keyframes to share.")] = "20,30,40,50",
    strategy: Annotated[str, typer.Option(help="Placement rule whose per-video curves are used.")] = "uniform",
    weighting: Annotated[
        str, typer.Option(help="'videos': mean over videos (DAVIS); 'frames': pooled over frames.")
    ] = "videos",
    out: Annotated[Path | None, typer.Option("--out", help="Also write the result as JSON here.")] = None,
) -> None:
    """The best split of a keyframe budget between videos, read off measured per-video curves (an oracle bound).

    No selector that only moves keyframes between videos (keeping the report's placement inside
    each) can beat this; compare it with the even split to see what allocation is worth.
    """
    from curator.bench.allocation import allocation_report, format_allocation_table

    try:
        source = json.loads(report.read_text())
    except FileNotFoundError:
        raise _fail(f"no such report: {report}") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"{report} is not valid JSON: {exc}") from None
    if not isinstance(source, dict):
        raise _fail(f"{report} is not a keyframe-bench report (expected a JSON object with 'rows')")
    try:
        totals = [int(t) for t in frames.split(",") if t.strip()]
    except ValueError:
        raise _fail(f"--frames must be comma-separated integers, got {frames!r}") from None
    if not totals or min(totals) < 0:
        raise _fail(f"--frames must list non-negative totals, got {frames!r}")
    with _user_errors():
        result = allocation_report(source, strategy, totals, weighting)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    typer.echo(format_allocation_table(result))


@bench_app.command("placement")
def bench_placement(
    davis: Annotated[Path, typer.Option("--davis", help="DAVIS-layout folder (JPEGImages/480p, Annotations/480p).")],
    out: Annotated[Path, typer.Option("--out", help="JSON report path (a PNG plot is written beside it).")] = Path(
        "bench-out/placement.json"
    ),
    budgets: Annotated[str, typer.Option(help="Comma-separated keyframe budgets.")] = "1,2,4,8",
    strategies: Annotated[str, typer.Option(help="Comma-separated selectors scored against the oracle.")] = "uniform",
    propagator: Annotated[
        str | None, typer.Option(help="A bidirectional propagator (default: the default CPU propagator).")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="DINOv2 weights for the pool and feature propagators.")
    ] = None,
    sequences: Annotated[str | None, typer.Option(help="Comma-separated sequence names (default all).")] = None,
    stride: Annotated[
        int, typer.Option(help="Anchor every N frames (1: exact oracle; more: cheaper, a lower bound).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the selectors' random generator.")] = 0,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Reuse patch features and placement sums across runs.")
    ] = None,
) -> None:
    """The best keyframe placement inside each sequence, found with the ground truth (an oracle bound).

    Tracks from every anchor frame once (about n^2 propagation steps per sequence: 2 CPU-hours for the
    10 DAVIS-2016 sequences, then cached), then an exact dynamic programme finds the best placement for
    every budget and scores the strategies' picks on the same sums. No selector can beat the oracle;
    its lead over `uniform` is all that placement can win with this propagator.
    """
    from curator.annotate import DEFAULT_CPU_PROPAGATOR
    from curator.bench.keyframes import plot_report
    from curator.bench.placement import format_placement_table, run_placement_bench

    try:
        budget_list = [int(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise _fail(f"--budgets must be comma-separated integers, got {budgets!r}") from None
    try:
        with _user_errors():
            report = run_placement_bench(
                davis,
                budget_list,
                [s.strip() for s in strategies.split(",") if s.strip()],
                propagator or DEFAULT_CPU_PROPAGATOR,
                checkpoint=checkpoint,
                sequences=[s.strip() for s in sequences.split(",")] if sequences else None,
                stride=stride,
                seed=seed,
                log=typer.echo,
                cache_dir=cache_dir,
            )
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    plot = out.with_suffix(".png")
    plot_report(report, plot)
    typer.echo(format_placement_table(report))
    typer.echo(f"wrote {out} and {plot}")


@bench_app.command("select-scale")
def bench_select_scale(
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")],
    n: Annotated[int, typer.Option("--n", help="Synthetic vectors in the pool.", min=1)] = 100_000,
    dim: Annotated[int, typer.Option("--dim", help="Vector dimension.", min=1)] = 384,
    budget: Annotated[int, typer.Option("--budget", help="Picks.", min=1)] = 1000,
    clusters: Annotated[int, typer.Option(help="Clusters the vectors are drawn around.", min=1)] = 100,
    spread: Annotated[float, typer.Option(help="Within-cluster noise relative to the centres.", min=0)] = 0.5,
    methods: Annotated[
        str, typer.Option(help="Comma-separated: curator, skactiveml, lightly_mundig.")
    ] = "curator,skactiveml,lightly_mundig",
    seed: Annotated[int, typer.Option(help="Seed of the data and of each method's first pick.")] = 0,
    timeout: Annotated[float, typer.Option(help="Per-method limit in seconds.", min=1)] = 3600.0,
) -> None:
    """Greedy k-center on N synthetic clustered vectors: ours against scikit-activeml and lightly-mundig.

    Reports seconds, peak RSS and the max-min distance (k-center objective, lower is better) of each
    method, every method in its own process on the same data.
    """
    from curator.bench.select_scale import bench_select_scale as run

    with _user_errors():
        report = run(
            n,
            dim,
            budget,
            clusters=clusters,
            spread=spread,
            seed=seed,
            methods=[m.strip() for m in methods.split(",") if m.strip()],
            timeout_s=timeout,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    typer.echo(json.dumps(report, indent=2))


@app.command("round")
def round_(
    project: ProjectOpt = "default",
    budget: Annotated[int, typer.Option("--budget", "-n", help="Frames to queue for the next round.", min=1)] = 10,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Selector for the next batch.")] = "curator",
    propagator: Annotated[str | None, typer.Option(help="Propagator (default: settings.propagator).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    steps: Annotated[int | None, typer.Option(help="Proxy training steps (default 100).", min=1)] = None,
    short_side: Annotated[
        int | None, typer.Option(help="Short side frames are resized to for the backbone (default 224).", min=14)
    ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run one retrain-and-reselect round in this process (the same work as ``POST /projects/{id}/rounds``).

    Propagates from every human mask, trains the proxy model, scores every frame, writes dense labels
    with provenance, selects the next batch across all videos and queues it. Needs human masks
    (submitted over the REST queue) and DINOv2 weights (``CURATOR_BACKBONE_CHECKPOINT`` or the hub).
    Do not run it against a database a running ``curator serve`` is using a round on.
    """
    from api.jobs import _make_selector
    from api.repo import create_tasks
    from curator.jobs.base import JobFailed
    from curator.store import repo
    from curator.train.job import run_project_round
    from curator.workspace import Workspace

    with _user_errors():
        settings = _settings(home, config, seed=seed)
        workspace = Workspace(settings)
        with workspace.db.session() as session:
            project_id = repo.get_project(session, project).id
        params = {
            "budget": budget,
            "strategy": strategy,
            "propagator": propagator,
            "seed": settings.seed,
            "steps": steps,
            "short_side": short_side,
        }
        try:
            with _progress() as progress:
                summary = run_project_round(
                    workspace, project_id, params, _make_selector, create_tasks, progress=progress
                )
        except JobFailed as exc:
            raise _fail(str(exc)) from None
        finally:
            workspace.close()
    typer.echo(json.dumps(summary, indent=2, default=str))


def main() -> None:
    """Entry point for ``python -m curator``."""
    app()
