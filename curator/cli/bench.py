"""``curator bench ...``: the benchmarks; each writes a JSON report.

The benchmarks are the top-level package ``benchmarks``, which ships only with a source checkout
(it is not in the wheel). :func:`benchmark` finds the checkout this ``curator`` package runs from,
puts it on ``sys.path`` and imports the module a command needs; without a checkout the command
stops with one ``error:`` line.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from curator.cli.common import BackboneOpt, CheckpointOpt, fail, open_home, user_errors
from curator.config import load_settings

bench_app = typer.Typer(help="Benchmarks; each writes a JSON report.", no_args_is_help=True)

DavisOpt = Annotated[Path, typer.Option("--davis", help="DAVIS-layout folder (JPEGImages/480p, Annotations/480p).")]
SequencesOpt = Annotated[str | None, typer.Option(help="Comma-separated sequence names (default all).")]


def checkout_root() -> Path | None:
    """The source checkout the ``curator`` package runs from (a folder holding ``curator/`` and
    ``benchmarks/``), or ``None`` for an installed wheel."""
    import curator

    root = Path(curator.__file__).resolve().parent.parent
    if (root / "curator").is_dir() and (root / "benchmarks" / "__init__.py").is_file():
        return root
    return None


def benchmark(module: str) -> Any:
    """Import ``benchmarks.<module>`` from the checkout; exit 2 with one red line without one."""
    root = checkout_root()
    if root is None:
        raise fail(
            "the benchmarks ship only with a source checkout of curator (benchmarks/ beside curator/), "
            "not with the installed package; run `curator bench` from an editable install of a clone"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"benchmarks.{module}")


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _sequences(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",")] if text else None


def _write(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


@bench_app.command("ingest")
def bench_ingest(
    video: Annotated[Path, typer.Argument(help="Video to benchmark.")],
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")],
    backbone: BackboneOpt = "auto",
    checkpoint: CheckpointOpt = None,
    batch_size: Annotated[int, typer.Option(help="Frames per inference batch.")] = 16,
    max_side: Annotated[int, typer.Option(help="Frames are resized so the longer side is at most this.")] = 1280,
    repeats: Annotated[int, typer.Option(help="Turns of bare decoding and of the decode stage.", min=1)] = 2,
) -> None:
    """Bare PyAV decoding, decode-stage, embed-only and full-pipeline frames/s in one run, with peak RSS."""
    bench = benchmark("ingest")
    with open_home(None, None, backbone=backbone, backbone_checkpoint=checkpoint) as curator:
        model = curator.backbone()
        report = bench.bench_ingest(video, model, batch_size=batch_size, max_side=max_side, repeats=repeats)
    _write(out, report)
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("embed")
def bench_embed(
    davis: DavisOpt,
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")] = Path("bench-out/embed.json"),
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="DINOv2 ViT-S/14 weights (default: the settings').")
    ] = None,
    turns: Annotated[int, typer.Option(help="Timed turns, each fp32 then int8 on the same frames.", min=1)] = 5,
    turn_frames: Annotated[int, typer.Option(help="Frames per timed turn.", min=2)] = 48,
    strategies: Annotated[
        str, typer.Option(help="Comma-separated selectors whose picks are compared.")
    ] = ",".join(("kcenter", "probcover", "typicality", "hybrid", "temporal", "curator")),
    budgets: Annotated[str, typer.Option(help="Comma-separated keyframe budgets per sequence.")] = "2,8",
    sequences: SequencesOpt = None,
) -> None:
    """DINOv2 embedding on this CPU: FLOPs per frame and the fp32 GEMM rate (the ceiling), eager fp32
    against the int8 ONNX Runtime embedder (``dinov2_vits14_int8``) turn by turn, and how faithful the
    int8 embeddings are (cosine on every DAVIS frame; the keyframes each selector picks with either)."""
    bench = benchmark("embed")
    weights = checkpoint or load_settings().backbone_checkpoint
    if not weights:
        raise fail("the embedding benchmark needs DINOv2 weights: pass --checkpoint or set CURATOR_BACKBONE_CHECKPOINT")
    with user_errors():
        report = bench.bench_embed(
            davis, weights, turns=turns, turn_frames=turn_frames, strategies=_names(strategies),
            budgets=_ints(budgets, "--budgets"), sequences=_names(sequences) if sequences else None,
        )
    _write(out, report)
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("api")
def bench_api(
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")],
    clients: Annotated[int, typer.Option(help="Concurrent annotator clients.", min=1)] = 8,
    seconds: Annotated[float, typer.Option(help="Seconds to run each server (curator, the reference).", min=1)] = 20.0,
    tasks: Annotated[int, typer.Option(help="Tasks in each queue (enough never to run dry).", min=1)] = 20000,
    turns: Annotated[int, typer.Option(help="Alternating turns the two servers take.", min=1)] = 2,
) -> None:
    """Claim+submit cycles per second and p50/p99 cycle latency against a local server on loopback,
    beside a bare FastAPI + SQLAlchemy app doing the same writes (``reference``, ``ratio``)."""
    report = benchmark("api").bench_api(clients=clients, seconds=seconds, tasks=tasks, turns=turns)
    _write(out, report)
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("keyframes")
def bench_keyframes(
    davis: DavisOpt,
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
    sequences: SequencesOpt = None,
    sam2_config: Annotated[str | None, typer.Option("--sam2-config", help="SAM 2 Hydra config name.")] = None,
    sam2_checkpoint: Annotated[str | None, typer.Option("--sam2-checkpoint", help="SAM 2 checkpoint.")] = None,
    sam2_hub: Annotated[str | None, typer.Option("--sam2-hub", help="SAM 2 hub id, e.g. facebook/sam2.1-hiera-tiny.")] = None,
    sam2_image_size: Annotated[int | None, typer.Option("--sam2-image-size", help="Override SAM 2's input size.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the selectors' random generator.")] = 0,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Reuse per-sequence patch features across runs.")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Processes running sequences at once (0: one per CPU core).", min=0)
    ] = 0,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="A checkout of another commit to run the same benchmark with, for a speed ratio."),
    ] = None,
) -> None:
    """J&F of propagated masks against the number of keyframes picked by each strategy (DAVIS)."""
    from curator.annotate import DEFAULT_CPU_PROPAGATOR
    from curator.annotate.sam2_backend import SAM2WeightsError

    bench = benchmark("keyframes")
    name = propagator or DEFAULT_CPU_PROPAGATOR
    options: dict[str, Any] = {}
    if name == "sam2":
        options = {"checkpoint": sam2_checkpoint, "hub_id": sam2_hub, "image_size": sam2_image_size}
        if sam2_config:
            options["config"] = sam2_config
    try:
        with user_errors():
            report = bench.run_keyframe_bench(
                davis,
                [int(b) for b in budgets.split(",") if b.strip()],
                _names(strategies),
                name,
                checkpoint=checkpoint,
                sequences=_sequences(sequences),
                propagator_options=options,
                seed=seed,
                log=typer.echo,
                cache_dir=cache_dir,
                workers=workers,
                baseline=baseline,
            )
    except (SAM2WeightsError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    _write(out, report)
    plot = out.with_suffix(".png")
    bench.plot_report(report, plot)
    typer.echo(bench.format_table(report))
    typer.echo(
        f"{report['propagator']}: {report['cold_seconds_per_frame']:.3f} s/frame cold, "
        f"{report['seconds_per_frame']:.3f} s/frame with cached flow/features; wrote {out} and {plot}"
    )
    if report.get("speedup") is not None:
        typer.echo(
            f"{report['wall_seconds']:.1f} s against {report['baseline']['wall_seconds']:.1f} s for {baseline}: "
            f"{report['speedup']:.2f}x, largest J&F difference {report['max_abs_JF_diff']:.4f}"
        )


@bench_app.command("round")
def bench_round(
    davis: DavisOpt,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="DINOv2 weights (propagator and proxy).")],
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")] = Path("bench-out/round.json"),
    sequences: SequencesOpt = None,
    max_sequences: Annotated[int | None, typer.Option("--max-sequences", help="Keep the first N sequences.", min=1)] = None,
    max_frames: Annotated[int | None, typer.Option("--max-frames", help="Cut sequences to N frames.", min=2)] = None,
    keyframes: Annotated[int, typer.Option(help="Uniform human keyframes per video.", min=1)] = 4,
    steps: Annotated[int, typer.Option(help="Proxy training steps.", min=1)] = 100,
    short_side: Annotated[int, typer.Option("--short-side", help="Short side of the proxy's patch features.")] = 224,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="A checkout of another commit to run the same round with, for a speed ratio."),
    ] = None,
    rounds: Annotated[int, typer.Option(help="Rounds in a row, one more keyframe per video each.", min=1)] = 1,
) -> None:
    """A cold retrain round over DAVIS sequences (and later ones): seconds per stage, proxy metrics, peak RSS."""
    bench = benchmark("round")
    try:
        with user_errors():
            report = bench.run_round_bench(
                davis, checkpoint, sequences=_sequences(sequences), max_sequences=max_sequences,
                max_frames=max_frames, keyframes=keyframes, steps=steps, short_side=short_side, baseline=baseline,
                rounds=rounds,
            )
    except (FileNotFoundError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    _write(out, report)
    typer.echo(json.dumps({k: report[k] for k in ("current", "baseline", "speedup")}, indent=2))


def _loop_options(checkpoint: str | None, selector_params: str | None, steps: int | None) -> tuple[str, dict[str, Any], Any]:
    """The DINOv2 weights, the per-strategy selector settings and the round settings of ``bench loop``."""
    from dataclasses import replace as dc_replace

    from curator.train.loop import RoundConfig

    weights = checkpoint or load_settings().backbone_checkpoint
    if not weights:
        raise fail("the loop benchmark needs DINOv2 weights: pass --checkpoint or set CURATOR_BACKBONE_CHECKPOINT")
    try:
        params = json.loads(selector_params) if selector_params else {}
    except json.JSONDecodeError as exc:
        raise fail(f"--selector-params is not valid JSON: {exc}") from None
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise fail('--selector-params must map strategy names to settings, e.g. {"curator": {"time_weight": 0.9}}')
    config = RoundConfig(short_side=336)
    if steps is not None:
        config = dc_replace(config, proxy=dc_replace(config.proxy, steps=steps))
    return weights, params, config


@bench_app.command("loop")
def bench_loop(
    davis: DavisOpt,
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
    sequences: SequencesOpt = None,
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
    from curator.annotate import DEFAULT_CPU_PROPAGATOR

    bench = benchmark("loop")
    weights, params, config = _loop_options(checkpoint, selector_params, steps)
    with user_errors():
        report = bench.run_loop_bench(
            davis,
            rounds,
            per_round,
            _names(strategies),
            weights,
            propagator=propagator or DEFAULT_CPU_PROPAGATOR,
            sequences=_sequences(sequences),
            seed=seed,
            config=config,
            selector_params=params,
            cache_dir=cache_dir,
            log=typer.echo,
        )
    _write(out, report)
    plot = out.with_suffix(".png")
    bench.plot_loop(report, plot)
    typer.echo(bench.format_loop_table(report))
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
    bench = benchmark("allocation")
    try:
        source = json.loads(report.read_text())
    except FileNotFoundError:
        raise fail(f"no such report: {report}") from None
    except json.JSONDecodeError as exc:
        raise fail(f"{report} is not valid JSON: {exc}") from None
    if not isinstance(source, dict):
        raise fail(f"{report} is not a keyframe-bench report (expected a JSON object with 'rows')")
    try:
        totals = [int(t) for t in frames.split(",") if t.strip()]
    except ValueError:
        raise fail(f"--frames must be comma-separated integers, got {frames!r}") from None
    if not totals or min(totals) < 0:
        raise fail(f"--frames must list non-negative totals, got {frames!r}")
    with user_errors():
        result = bench.allocation_report(source, strategy, totals, weighting)
    if out is not None:
        _write(out, result)
    typer.echo(bench.format_allocation_table(result))


@bench_app.command("placement")
def bench_placement(
    davis: DavisOpt,
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
    sequences: SequencesOpt = None,
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

    plot_report = benchmark("keyframes").plot_report
    bench = benchmark("placement")
    try:
        budget_list = [int(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise fail(f"--budgets must be comma-separated integers, got {budgets!r}") from None
    try:
        with user_errors():
            report = bench.run_placement_bench(
                davis,
                budget_list,
                _names(strategies),
                propagator or DEFAULT_CPU_PROPAGATOR,
                checkpoint=checkpoint,
                sequences=_sequences(sequences),
                stride=stride,
                seed=seed,
                log=typer.echo,
                cache_dir=cache_dir,
            )
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    _write(out, report)
    plot = out.with_suffix(".png")
    plot_report(report, plot)
    typer.echo(bench.format_placement_table(report))
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
    bench = benchmark("select_scale")
    with user_errors():
        report = bench.bench_select_scale(
            n,
            dim,
            budget,
            clusters=clusters,
            spread=spread,
            seed=seed,
            methods=_names(methods),
            timeout_s=timeout,
        )
    _write(out, report)
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("index-recall")
def bench_index_recall(
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")],
    n: Annotated[int, typer.Option("--n", help="Indexed vectors.", min=100)] = 1_000_000,
    dim: Annotated[int, typer.Option("--dim", help="Vector dimension.", min=1)] = 384,
    queries: Annotated[int, typer.Option(help="Held-out query vectors.", min=1)] = 1000,
    k: Annotated[int, typer.Option("-k", help="Neighbours compared.", min=1)] = 10,
    nprobe: Annotated[int | None, typer.Option(help="IVF lists searched (default the store's).", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Data seed.")] = 0,
) -> None:
    """Recall@k of the project index's IVF form against its exact form, with build and query times.

    Builds both exactly as the project index does (``curator.index.FaissIndex``) over clustered unit
    vectors; the target is recall@10 >= 0.95 at 1M x 384.
    """
    bench = benchmark("index_recall")
    extra = {} if nprobe is None else {"nprobe": nprobe}
    with user_errors():
        report = bench.run_index_recall(n=n, dim=dim, queries=queries, k=k, seed=seed, **extra)
    _write(out, report)
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("segment")
def bench_segment(
    davis: DavisOpt,
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")] = Path("bench-out/segment.json"),
    backends: Annotated[str, typer.Option(help="Comma-separated segmenters: grabcut, feature, sam2.")] = "grabcut,feature",
    frames: Annotated[int, typer.Option("--frames", help="Frames per sequence, evenly spaced.", min=1)] = 3,
    sequences: SequencesOpt = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", help="DINOv2 weights for `feature` (default: the settings').")
    ] = None,
    sam2_config: Annotated[str | None, typer.Option("--sam2-config", help="SAM 2 Hydra config name.")] = None,
    sam2_checkpoint: Annotated[str | None, typer.Option("--sam2-checkpoint", help="SAM 2 checkpoint.")] = None,
    sam2_hub: Annotated[str | None, typer.Option("--sam2-hub", help="SAM 2 hub id, e.g. facebook/sam2.1-hiera-tiny.")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    max_clicks: Annotated[int, typer.Option("--max-clicks", help="Most clicks per frame.", min=1)] = 20,
    params: Annotated[
        str | None, typer.Option("--params", help='JSON settings per backend, e.g. \'{"feature": {"refine": "grabcut"}}\'.')
    ] = None,
) -> None:
    """Click-to-segment on DAVIS frames: per backend, click latency p50/p95 and NoC@85/NoC@90 under the
    standard simulated annotator (each click at the error point farthest from the error's boundary)."""
    from curator.annotate.sam2_backend import SAM2WeightsError

    bench = benchmark("segment")
    try:
        options: dict[str, dict[str, Any]] = json.loads(params) if params else {}
    except json.JSONDecodeError as exc:
        raise fail(f"--params is not valid JSON: {exc}") from None
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise fail('--params must map backend names to settings, e.g. {"feature": {"refine": "grabcut"}}')
    sam2 = {k: v for k, v in {"config": sam2_config, "checkpoint": sam2_checkpoint, "hub_id": sam2_hub}.items() if v}
    options["sam2"] = {**sam2, **options.get("sam2", {})}
    try:
        with user_errors():
            report = bench.run_segment_bench(
                davis,
                _names(backends),
                frames=frames,
                sequences=_sequences(sequences),
                checkpoint=checkpoint or load_settings().backbone_checkpoint or None,
                device=device,
                max_clicks=max_clicks,
                options=options,
                log=typer.echo,
            )
    except (SAM2WeightsError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    _write(out, report)
    typer.echo(bench.format_table(report))
    typer.echo(f"wrote {out}")


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise fail(f"{option} must be comma-separated integers, got {text!r}") from None


def _effort_plan(checkpoint: str | None, per_round: str, rounds: int, steps: int | None) -> tuple[str, list[int], Any]:
    """The DINOv2 weights, the curator arm's frames per round and the round settings of ``bench effort``."""
    from dataclasses import replace as dc_replace

    from curator.train.loop import RoundConfig

    weights = checkpoint or load_settings().backbone_checkpoint
    if not weights:
        raise fail("the effort benchmark needs DINOv2 weights: pass --checkpoint or set CURATOR_BACKBONE_CHECKPOINT")
    schedule = _ints(per_round, "--per-round")
    if len(schedule) == 1:
        schedule = schedule * rounds
    config = RoundConfig(short_side=336)
    if steps is not None:
        config = dc_replace(config, proxy=dc_replace(config.proxy, steps=steps))
    return weights, schedule, config


@bench_app.command("effort")
def bench_effort(
    davis: DavisOpt,
    out: Annotated[Path, typer.Option("--out", help="JSON report path (a PNG plot is written beside it).")] = Path(
        "bench-out/effort.json"
    ),
    strategies: Annotated[
        str, typer.Option(help="Comma-separated arms: manual, uniform-scratch, uniform-clicks, curator.")
    ] = "manual,uniform-scratch,uniform-clicks,curator",
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="DINOv2 weights (default: $CURATOR_BACKBONE_CHECKPOINT)."),
    ] = None,
    cost: Annotated[
        Path | None, typer.Option("--cost", help="Cost model YAML (default: configs/bench/effort_cost.yaml).")
    ] = None,
    budgets: Annotated[str, typer.Option(help="Uniform keyframes per video, one point each.")] = "1,2,4,8",
    per_round: Annotated[
        str, typer.Option("--per-round", help="Frames the curator arm labels per round; a list gives each round's.")
    ] = "10",
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds of the curator arm (with one --per-round).", min=1)] = 8,
    sequences: SequencesOpt = None,
    segmenter: Annotated[str, typer.Option(help="Click-to-segment backend: auto, feature, grabcut or sam2.")] = "auto",
    propagator: Annotated[
        str | None, typer.Option(help="Propagator name (default: the default CPU propagator).")
    ] = None,
    target_iou: Annotated[
        float | None, typer.Option("--target-iou", help="IoU the annotator clicks to (default: the cost file's).")
    ] = None,
    max_clicks: Annotated[
        int | None, typer.Option("--max-clicks", help="Clicks before drawing from scratch (default: the cost file's).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Proxy training steps per round.", min=1)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the selector and the proxy model.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Keep patch features, flow, embeddings and propagations across runs."),
    ] = None,
) -> None:
    """J&F over every frame of a DAVIS-layout folder against annotator-seconds, per way of labelling it.

    A simulated annotator makes each keyframe's mask as on the labelling page (from the task's
    pre-annotation, clicks with the click-to-segment backend until the IoU reaches the target, a
    drawing from scratch when they do not) and a cost model prices every action. Prints the seconds
    each arm needs to reach J&F 0.80 and 0.85 and where they went.
    """
    from curator.annotate import DEFAULT_CPU_PROPAGATOR
    from curator.annotate.sam2_backend import SAM2WeightsError

    bench = benchmark("effort")
    weights, schedule, config = _effort_plan(checkpoint, per_round, rounds, steps)
    try:
        with user_errors():
            model = bench.CostModel.load(cost, target_iou=target_iou, max_clicks=max_clicks)
            report = bench.run_effort_bench(
                davis,
                weights,
                _names(strategies),
                budgets=_ints(budgets, "--budgets"),
                schedule=schedule,
                sequences=_sequences(sequences),
                cost=model,
                segmenter=segmenter,
                propagator=propagator or DEFAULT_CPU_PROPAGATOR,
                config=config,
                seed=seed,
                cache_dir=cache_dir,
                device=device,
                log=typer.echo,
            )
    except (SAM2WeightsError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    _write(out, report)
    plot = out.with_suffix(".png")
    bench.plot_effort(report, plot)
    typer.echo(bench.format_effort_table(report))
    typer.echo(f"wrote {out} and {plot}")


@bench_app.command("views")
def bench_views(
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")] = Path("bench-out/views.json"),
    frames: Annotated[int, typer.Option(help="Frames in the synthetic project.", min=1)] = 20_000,
    videos: Annotated[int, typer.Option(help="Videos they are spread over.", min=1)] = 10,
    repeats: Annotated[int, typer.Option(help="Timed calls per API route.", min=1)] = 5,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Time the page in Chromium too.")] = True,
) -> None:
    """The project view with FRAMES frames on loopback: the API's overview, embedding map (cold and
    cached), timeline and rounds, and the page drawing its overview and map in Chromium (ms; budget 2 s)."""
    report = benchmark("views").bench_views(frames=frames, videos=videos, repeats=repeats, browser=browser)
    _write(out, report)
    typer.echo(json.dumps(report, indent=2))


@bench_app.command("scale")
def bench_scale(
    out: Annotated[Path, typer.Option("--out", help="JSON report path.")] = Path("bench-out/scale.json"),
    workers: Annotated[str, typer.Option(help="Comma-separated Ray worker counts (one CPU each).")] = "1,2",
    videos: Annotated[
        list[Path] | None, typer.Option("--video", help="A video to ingest (repeatable); default clips of the sample.")
    ] = None,
    clips: Annotated[int, typer.Option(help="Clips cut from the bundled sample when no --video is given.", min=1)] = 4,
    clip_frames: Annotated[int, typer.Option(help="Frames per clip (the sample has 250; clips wrap around).", min=2)] = 250,
    max_side: Annotated[int, typer.Option(help="Stored frames' longer side.", min=16)] = 320,
    repeats: Annotated[
        int, typer.Option(help="Timed runs of each worker count and of each replica count, taking turns (median).", min=1)
    ] = 5,
    parts: Annotated[
        str, typer.Option(help="Comma-separated parts to run: ray (Ray workers), replicas (API replicas on PostgreSQL).")
    ] = "ray,replicas",
    clients: Annotated[int, typer.Option(help="Client processes of the replicas part.", min=1)] = 8,
    replica_seconds: Annotated[float, typer.Option(help="Seconds of each run of the replicas part.", min=0.5)] = 10.0,
    round_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--round-checkpoint",
            help="DINOv2 weights: the ray part also times a round (propagation and scoring split into "
            "Ray tasks, from a cold derived-data store).",
        ),
    ] = None,
    part_frames: Annotated[
        int | None,
        typer.Option(
            "--part-frames", min=1,
            help="Part size of the ingest, propagate and round jobs for long videos (default theirs): one long "
            "video is then split into several Ray tasks.",
        ),
    ] = None,
    clip_gop: Annotated[
        int | None,
        typer.Option("--clip-gop", min=1, help="A keyframe at least every this many frames in the cut clips."),
    ] = None,
    netns: Annotated[
        bool,
        typer.Option(
            "--netns/--no-netns",
            help="Run the ray part in a loopback-only network namespace (unshare; Ray then sees 127.0.0.1 "
            "only). The replicas part listens on 127.0.0.1 and needs none: alone, it never re-runs.",
        ),
    ] = True,
) -> None:
    """Frames/s of ingest+embed and of propagation on a local Ray cluster with 1 and 2 workers
    (``{"ray": {"workers_1_fps", "workers_2_fps", "ratio", ...}}``; with ``--round-checkpoint``, of
    a round too: ``round_workers_1_fps``, ...; with ``--clips 1 --clip-frames 2000 --clip-gop 50
    --part-frames 250``, of one long video split into parts), and claim+submit cycles/s of the
    REST queue with 1 and 2 ``curator serve`` replicas sharing one throwaway PostgreSQL database, with
    p50/p99 latency, errors and a check that no task was leased twice
    (``{"replicas": {"1_cycles_per_s", "2_cycles_per_s", "ratio", "double_leases", ...}}``). On one
    machine the replicas, their clients and PostgreSQL share the cores: the replicas' ratio shows that
    replicas do not slow each other and lose nothing, not what more machines would add.
    """
    import subprocess

    bench = benchmark("scale")
    counts = _ints(workers, "--workers")
    chosen = _names(parts)
    unknown = [p for p in chosen if p not in bench.PARTS]
    if unknown or not chosen:
        raise fail(f"--parts: unknown part(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(bench.PARTS)}")
    out = out.resolve()
    if netns and "ray" in chosen and not bench.loopback_only():
        argv = [sys.executable, "-m", "curator", "bench", "scale", "--out", str(out), "--workers", workers,
                "--clips", str(clips), "--clip-frames", str(clip_frames), "--max-side", str(max_side),
                "--repeats", str(repeats), "--parts", ",".join(chosen), "--clients", str(clients),
                "--replica-seconds", str(replica_seconds), "--no-netns"]
        if round_checkpoint is not None:
            argv += ["--round-checkpoint", str(round_checkpoint.resolve())]
        if part_frames is not None:
            argv += ["--part-frames", str(part_frames)]
        if clip_gop is not None:
            argv += ["--clip-gop", str(clip_gop)]
        for video in videos or []:
            argv += ["--video", str(video.resolve())]
        try:
            command = bench.netns_command(argv)
        except FileNotFoundError as exc:
            raise fail(f"{exc}; or run with --no-netns") from None
        raise typer.Exit(subprocess.run(command).returncode)
    out.parent.mkdir(parents=True, exist_ok=True)
    with user_errors():
        report = bench.run_scale(
            out.parent, workers=counts, videos=videos, clips=clips, clip_frames=clip_frames, max_side=max_side,
            repeats=repeats, parts=chosen, clients=clients, replica_seconds=replica_seconds,
            round_checkpoint=round_checkpoint, part_frames=part_frames, clip_gop=clip_gop,
        )
    _write(out, report)
    typer.echo(json.dumps(report, indent=2))
