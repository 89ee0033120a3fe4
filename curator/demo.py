"""``curator demo``: the whole slice on the bundled sample clip, written to a report folder.

Stages: ingest (decode, shots, sampling, JPEGs) with embedding on the way, FAISS index, selection,
then a contact sheet PNG and a JSON summary.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.config import Settings
from curator.index.project import sync_project_index
from curator.progress import ProgressCallback, no_progress
from curator.report import SheetFrame, contact_sheet
from curator.store.models import Video

if TYPE_CHECKING:
    from curator.project import Curator, Project, QueuedPick, SelectionResult
    from curator.workspace import Workspace

DEMO_PROJECT = "demo"


def sample_video() -> Path:
    """Path of the short real clip shipped with the package (see ``curator/data/SAMPLE_LICENSE.md``)."""
    return Path(str(resources.files("curator") / "data" / "sample.mp4"))


@dataclass
class _DemoRun:
    """What the demo's stages produced, and the seconds each took."""

    backbone: str
    project: Project
    video_id: int
    selection: SelectionResult
    timings: dict[str, float]


def run_demo(
    settings: Settings,
    out_dir: Path,
    *,
    strategy: str | None = None,
    budget: int = 8,
    video: Path | None = None,
    checkpoint: str | None = None,
    progress: ProgressCallback = no_progress,
    notice: Any = print,
) -> dict[str, Any]:
    """Run ingest, embed, index and select on the sample clip through :class:`~curator.project.Project`
    and write ``out_dir``.

    Args:
        settings: Settings (home, backbone, sampling); ``settings.backbone`` may be ``auto``.
        out_dir: Report folder; gets ``contact_sheet.png`` and ``summary.json``.
        strategy: Selector name (default the settings').
        budget: Keyframes to pick (queued as tasks).
        video: Clip to use instead of the bundled sample.
        checkpoint: Backbone weights file (else ``settings.backbone_checkpoint``, then the hub).
        progress: Progress callback for each stage.
        notice: Called with human-readable notices (for example the backbone fallback).

    Returns:
        The summary written to ``summary.json``.
    """
    from curator.project import Curator

    video = video or sample_video()
    if checkpoint:
        settings = settings.model_copy(update={"backbone_checkpoint": checkpoint})
    curator = Curator(settings, notice=notice)
    try:
        run = _run_stages(curator, video, strategy, budget, progress)
        return _write_report(curator, run, budget, video.name, out_dir)
    finally:
        curator.close()


def _run_stages(
    curator: Curator, video: Path, strategy: str | None, budget: int, progress: ProgressCallback
) -> _DemoRun:
    """Load the backbone, then ingest (embedding on the way), index and select, timing each stage."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    backbone = curator.backbone()
    timings["load_backbone_s"] = time.perf_counter() - t0
    project = curator.project(DEMO_PROJECT)
    t0 = time.perf_counter()
    result = project.ingest(video, progress=progress).results[0]
    if not result.created:
        project.embed(progress=progress)
    timings["ingest_and_embed_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = sync_project_index(curator.workspace, project.id, backbone.name)
    progress("index", index.ntotal, index.ntotal)
    timings["index_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    selection = project.select(budget, strategy, backbone=backbone.name)
    progress("select", len(selection.picks), budget)
    timings["select_s"] = time.perf_counter() - t0
    return _DemoRun(backbone.name, project, result.video_id, selection, timings)


def _video_facts(workspace: Workspace, video_id: int) -> tuple[dict[str, Any], list[tuple[int, int, float, float]]]:
    """The video's summary fields, and its shots as ``(shot id, index, start s, end s)``."""
    with workspace.db.session() as session:
        row = session.get(Video, video_id)
        assert row is not None
        shots = [(s.id, s.index, s.start_time, s.end_time) for s in row.shots]
        video_info = {
            "id": row.id,
            "filename": row.filename,
            "codec": row.codec,
            "fps": row.fps,
            "width": row.width,
            "height": row.height,
            "duration_s": row.duration,
            "decoded_frames": row.decoded_frames,
            "candidate_frames": len(row.frames),
        }
    return video_info, shots


def _shot_of(pick: QueuedPick, shot_index: dict[int, int]) -> int:
    """Index of the pick's shot within its video; -1 when it has none."""
    return shot_index.get(pick.shot_id, -1) if pick.shot_id is not None else -1


def _draw_sheet(
    run: _DemoRun,
    shots: list[tuple[int, int, float, float]],
    shot_index: dict[int, int],
    duration: float,
    out_dir: Path,
    video_name: str,
) -> Path:
    """Draw the picks, in time order, to ``out_dir/contact_sheet.png``."""
    picks = run.selection.picks
    sheet = [
        SheetFrame(
            image=run.project.image(p.frame_id),
            timestamp=p.timestamp,
            shot_index=_shot_of(p, shot_index),
            rank=p.rank,
            utility=p.utility,
        )
        for p in sorted(picks, key=lambda p: p.timestamp)
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    return contact_sheet(
        sheet,
        [start for _, _, start, _ in shots],
        duration,
        out_dir / "contact_sheet.png",
        f"{video_name}: {len(picks)} keyframes by '{run.selection.strategy}' on {run.backbone} embeddings",
    )


def _write_report(curator: Curator, run: _DemoRun, budget: int, video_name: str, out_dir: Path) -> dict[str, Any]:
    """Draw the contact sheet and write ``summary.json`` to ``out_dir``; returns the summary."""
    settings = curator.settings
    video_info, shots = _video_facts(curator.workspace, run.video_id)
    shot_index = {sid: idx for sid, idx, _, _ in shots}
    sheet_path = _draw_sheet(run, shots, shot_index, float(video_info["duration_s"]), out_dir, video_name)
    picks = run.selection.picks
    summary: dict[str, Any] = {
        "video": video_info,
        "backbone": run.backbone,
        "backbone_fallback_reason": curator.fallbacks.get(settings.backbone),
        "strategy": run.selection.strategy,
        "budget": budget,
        "selection_id": run.selection.selection_id,
        "shots": [{"index": i, "start_s": a, "end_s": b} for _, i, a, b in shots],
        "picks": [{**asdict(p), "shot_index": _shot_of(p, shot_index)} for p in picks],
        "shots_covered": len({shot_index.get(p.shot_id) for p in picks if p.shot_id is not None}),
        "timings": run.timings,
        "home": str(settings.home.resolve()),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "contact_sheet": str(sheet_path),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
