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
from curator.embed import create_backbone
from curator.index.project import sync_project_index
from curator.ingest import ingest_video
from curator.progress import ProgressCallback, no_progress
from curator.report import SheetFrame, contact_sheet
from curator.selection import SelectorLike, run_selection
from curator.store import repo
from curator.store.blobs import read_rgb
from curator.store.models import Video
from curator.workspace import Workspace

DEMO_PROJECT = "demo"


def sample_video() -> Path:
    """Path of the short real clip shipped with the package (see ``curator/data/SAMPLE_LICENSE.md``)."""
    return Path(str(resources.files("curator") / "data" / "sample.mp4"))


def run_demo(
    settings: Settings,
    selector: SelectorLike,
    out_dir: Path,
    *,
    budget: int = 8,
    video: Path | None = None,
    checkpoint: str | None = None,
    progress: ProgressCallback = no_progress,
    notice: Any = print,
) -> dict[str, Any]:
    """Run ingest, embed, index and select on the sample clip and write ``out_dir``.

    Args:
        settings: Settings (home, backbone, sampling); ``settings.backbone`` may be ``auto``.
        selector: The selector to run.
        out_dir: Report folder; gets ``contact_sheet.png`` and ``summary.json``.
        budget: Keyframes to pick.
        video: Clip to use instead of the bundled sample.
        checkpoint: Backbone weights file (else ``settings.backbone_checkpoint``, then the hub).
        progress: Progress callback for each stage.
        notice: Called with human-readable notices (for example the backbone fallback).

    Returns:
        The summary written to ``summary.json``.
    """
    timings: dict[str, float] = {}
    video = video or sample_video()
    workspace = Workspace(settings)
    try:
        t0 = time.perf_counter()
        choice = create_backbone(
            settings.backbone, checkpoint or settings.backbone_checkpoint or None, settings.device
        )
        backbone = choice.backbone
        if choice.fell_back:
            notice(
                "Notice: DINOv2 weights could not be resolved, so the demo uses the weight-free 'classic' "
                f"embedder instead.\n  Why: {choice.fell_back}"
            )
        timings["load_backbone_s"] = time.perf_counter() - t0
        with workspace.db.session() as session:
            project_id = repo.get_or_create_project(session, DEMO_PROJECT).id

        t0 = time.perf_counter()
        result = ingest_video(workspace, project_id, video, backbone=backbone, progress=progress)
        if not result.created:
            from curator.embed.project import embed_project

            embed_project(workspace, project_id, backbone, progress=progress)
        timings["ingest_and_embed_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        index = sync_project_index(workspace, project_id, backbone.name)
        progress("index", index.ntotal, index.ntotal)
        timings["index_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        selection_id, picks = run_selection(
            workspace, project_id, selector, budget, seed=settings.seed, backbone=backbone.name
        )
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
                image=read_rgb(workspace.blobs.path(p.blob_path)),
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
            f"{video.name}: {len(picks)} keyframes by '{selector.name}' on {backbone.name} embeddings",
        )
        summary: dict[str, Any] = {
            "video": video_info,
            "backbone": backbone.name,
            "backbone_fallback_reason": choice.fell_back,
            "strategy": selector.name,
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
        workspace.close()
