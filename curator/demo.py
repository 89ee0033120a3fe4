"""``curator demo``: the whole slice on the bundled sample clip, written to a report folder.

Stages: ingest (decode, shots, sampling, JPEGs) with embedding on the way, FAISS index, selection,
then a contact sheet PNG and a JSON summary.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from curator.config import Settings
from curator.index.project import sync_project_index
from curator.progress import ProgressCallback, no_progress
from curator.report import SheetFrame, contact_sheet
from curator.store.models import Video

DEMO_PROJECT = "demo"


def sample_video() -> Path:
    """Path of the short real clip shipped with the package (see ``curator/data/SAMPLE_LICENSE.md``)."""
    return Path(str(resources.files("curator") / "data" / "sample.mp4"))


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

    timings: dict[str, float] = {}
    video = video or sample_video()
    if checkpoint:
        settings = settings.model_copy(update={"backbone_checkpoint": checkpoint})
    curator = Curator(settings, notice=notice)
    workspace = curator.workspace
    try:
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
        index = sync_project_index(workspace, project.id, backbone.name)
        progress("index", index.ntotal, index.ntotal)
        timings["index_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        selection = project.select(budget, strategy, backbone=backbone.name)
        picks = selection.picks
        selection_id = selection.selection_id
        progress("select", len(picks), budget)
        timings["select_s"] = time.perf_counter() - t0
        with workspace.db.session() as session:
            row = session.get(Video, result.video_id)
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
        shot_index = {sid: idx for sid, idx, _, _ in shots}
        duration = float(row.duration)
        ordered = sorted(picks, key=lambda p: p.timestamp)
        sheet = [
            SheetFrame(
                image=project.image(p.frame_id),
                timestamp=p.timestamp,
                shot_index=shot_index.get(p.shot_id, -1) if p.shot_id is not None else -1,
                rank=p.rank,
                utility=p.utility,
            )
            for p in ordered
        ]
        out_dir.mkdir(parents=True, exist_ok=True)
        sheet_path = contact_sheet(
            sheet,
            [start for _, _, start, _ in shots],
            duration,
            out_dir / "contact_sheet.png",
            f"{video.name}: {len(picks)} keyframes by '{selection.strategy}' on {backbone.name} embeddings",
        )
        summary: dict[str, Any] = {
            "video": video_info,
            "backbone": backbone.name,
            "backbone_fallback_reason": curator.fallbacks.get(settings.backbone),
            "strategy": selection.strategy,
            "budget": budget,
            "selection_id": selection_id,
            "shots": [{"index": i, "start_s": a, "end_s": b} for _, i, a, b in shots],
            "picks": [
                {**asdict(p), "shot_index": shot_index.get(p.shot_id, -1) if p.shot_id is not None else -1}
                for p in picks
            ],
            "shots_covered": len({shot_index.get(p.shot_id) for p in picks if p.shot_id is not None}),
            "timings": timings,
            "home": str(settings.home.resolve()),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "contact_sheet": str(sheet_path),
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        curator.close()
