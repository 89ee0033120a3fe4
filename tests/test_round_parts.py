"""A round's propagation and scoring run as per-video parts (per chunk of a long video): the parts
hand their outputs over through files, the labels land in one transaction at the end, and how the
frames are cut into parts does not change a single label or score."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from conftest import DINOV2_CHECKPOINT, require
from curator.progress import Cancelled
from tests.test_cli_round import write_clip

ROUND = {"steps": 6, "short_side": 56, "propagator": "flow", "budget": 3, "seed": 3}


def _project(home: Path, clips: list[Path], name: str = "parts", keyframes: tuple[int, ...] = (0,)) -> Any:
    from curator.config import load_settings
    from curator.project import Curator

    settings = load_settings(
        None, home=home, backbone_checkpoint=str(require(DINOV2_CHECKPOINT)), preannotate=False, segment_warm=False
    )
    # a name of its own: under --db postgresql every home of a test shares one database
    project = Curator(settings).project(name)
    project.ingest(clips, backbone="classic")
    for video in project.videos():
        frames = project.frames(video["id"])
        for k in keyframes:
            if k < len(frames):
                mask = np.zeros((frames[k]["height"], frames[k]["width"]), dtype=bool)
                mask[14 + k : 34 + k, 4:24] = True
                project.label(frames[k]["id"], {1: mask})
    return project


def _labels(project: Any) -> dict[tuple[str, int, int, str], Any]:
    """Every annotation by (video file, frame index, object, source): its RLE and confidence."""
    from curator.store.models import Annotation, Frame, Video

    with project.workspace.db.session() as session:
        rows = session.execute(
            select(Video.filename, Frame.frame_index, Annotation.object_id, Annotation.source, Annotation.rle,
                   Annotation.confidence)
            .join(Frame, Frame.id == Annotation.frame_id)
            .join(Video, Video.id == Frame.video_id)
            .where(Video.project_id == project.id)
        ).all()
    return {(v, int(i), int(o), s): (rle["counts"], round(float(c or 0), 6)) for v, i, o, s, rle, c in rows}


def _scores(project: Any) -> dict[tuple[str, int, str], float]:
    from curator.store.models import Frame, FrameScoreRow, Video

    with project.workspace.db.session() as session:
        rows = session.execute(
            select(Video.filename, Frame.frame_index, FrameScoreRow.name, FrameScoreRow.value)
            .join(Frame, Frame.id == FrameScoreRow.frame_id)
            .join(Video, Video.id == Frame.video_id)
            .where(Video.project_id == project.id)
        ).all()
    return {(v, int(i), n): float(x) for v, i, n, x in rows}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    out = []
    for n, frames in ((0, 14), (1, 9)):
        out.append(folder / f"clip{n}.mkv")
        write_clip(out[-1], frames)
    return out


def test_parts_of_any_size_give_the_same_round(tmp_path: Path, clips: list[Path]) -> None:
    from curator.train.job import run_project_round

    whole = _project(tmp_path / "whole", clips, "whole")
    cut = _project(tmp_path / "cut", clips, "cut")
    seen: list[tuple[str, int, int | None]] = []
    one = run_project_round(whole.workspace, whole.id, dict(ROUND))
    two = run_project_round(cut.workspace, cut.id, {**ROUND, "part_frames": 4}, progress=lambda *a: seen.append(a))

    assert _labels(whole) == _labels(cut)
    # a frame's scores do not depend on its part, up to float noise from the batch it was predicted in
    scores_whole, scores_cut = _scores(whole), _scores(cut)
    assert scores_whole.keys() == scores_cut.keys() and len(scores_cut) > 0
    for key, value in scores_whole.items():
        assert scores_cut[key] == pytest.approx(value, abs=1e-5), key
    assert one["metrics"]["dense"] == two["metrics"]["dense"]
    assert one["metrics"]["proxy_JF"] == two["metrics"]["proxy_JF"]
    names_one = {v["id"]: v["filename"] for v in whole.videos()}
    names_two = {v["id"]: v["filename"] for v in cut.videos()}
    assert [(names_one[p["video_id"]], p["frame_index"]) for p in one["picks"]] == [
        (names_two[p["video_id"]], p["frame_index"]) for p in two["picks"]
    ]
    dense = two["metrics"]["dense"]
    assert dense["human"] == 2 and dense["human"] + dense["propagated"] + dense["predicted"] == 14 + 9
    sources = {k[3] for k in _labels(cut)}
    assert {"human", "propagated"} <= sources

    # progress: propagation of the two videos, training, then 6 scoring parts (14 = 4+4+4+2, 9 = 4+4+1)
    stages = [s for s, _, _ in seen]
    assert stages.index("propagate") < stages.index("train") < stages.index("score")
    scored = [(d, t) for s, d, t in seen if s == "score"]
    assert scored[-1] == (23, 23) and all(d <= t for d, t in scored)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(scored))

    # the parts' work folder is gone; the proxy's checkpoint stays
    rounds = cut.workspace.blobs.path(f"projects/{cut.id}/rounds")
    assert sorted(p.name for p in rounds.iterdir()) == ["0001.pt"]


def test_a_long_videos_propagation_in_parts_cut_at_keyframes_gives_the_same_round(
    tmp_path: Path, clips: list[Path]
) -> None:
    from curator.train.job import run_project_round

    whole = _project(tmp_path / "whole", clips, "pwhole", keyframes=(0, 5, 10))
    cut = _project(tmp_path / "cut", clips, "pcut", keyframes=(0, 5, 10))
    one = run_project_round(whole.workspace, whole.id, dict(ROUND))
    two = run_project_round(cut.workspace, cut.id, {**ROUND, "part_frames": 4})
    # clip0 (14 frames, keyframes 0, 5, 10) in 3 parts, clip1 (9 frames, keyframes 0, 5) in 2
    assert one["metrics"]["parts"]["propagate"] == 2 and two["metrics"]["parts"]["propagate"] == 5
    labels = _labels(cut)
    assert _labels(whole) == labels
    assert sum(1 for key in labels if key[3] == "propagated") > 0
    assert one["metrics"]["dense"] == two["metrics"]["dense"]
    assert one["metrics"]["proxy_JF"] == two["metrics"]["proxy_JF"]


def test_propagate_parts_reach_the_keyframes_around_them() -> None:
    from curator.annotate.frames import FrameSource
    from curator.train.job import propagate_parts
    from curator.train.loop import VideoState

    def source(n: int) -> FrameSource:
        return FrameSource([np.zeros((2, 2, 3), dtype=np.uint8)] * n)

    full, empty = {1: np.ones((2, 2), dtype=bool)}, {1: np.zeros((2, 2), dtype=bool)}
    video = VideoState(7, source(20), np.arange(20), human={3: full, 9: empty, 12: full})
    assert propagate_parts([video], 100) == [{"video_id": 7, "span": [0, 20], "reach": [0, 20]}]
    # an empty human frame (9) is not a keyframe: no cut there, and the reach skips it
    assert propagate_parts([video], 5) == [
        {"video_id": 7, "span": [0, 12], "reach": [0, 13]},
        {"video_id": 7, "span": [12, 20], "reach": [12, 20]},
    ]
    assert propagate_parts([VideoState(8, source(4), np.arange(4))], 2) == []


def test_a_round_cancelled_while_scoring_leaves_the_previous_labels(tmp_path: Path, clips: list[Path]) -> None:
    from curator.store.models import Round
    from curator.train.job import run_project_round

    project = _project(tmp_path / "home", clips)
    run_project_round(project.workspace, project.id, dict(ROUND))
    before, scores_before = _labels(project), _scores(project)
    parts_scored = []

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "score":
            parts_scored.append(done)

    with pytest.raises(Cancelled):
        run_project_round(
            project.workspace, project.id, {**ROUND, "part_frames": 4, "seed": 4}, progress=progress,
            cancel=lambda: len(parts_scored) > 5,  # several parts have written their files by then
        )
    assert parts_scored and max(parts_scored) >= 4
    assert _labels(project) == before and _scores(project) == scores_before
    with project.workspace.db.session() as session:
        assert [r.number for r in session.scalars(select(Round).where(Round.project_id == project.id))] == [1]
    rounds = project.workspace.blobs.path(f"projects/{project.id}/rounds")
    assert sorted(p.name for p in rounds.iterdir()) == ["0001.pt"]


def test_part_frames_must_be_positive(tmp_path: Path, clips: list[Path]) -> None:
    from curator.jobs.base import JobFailed
    from curator.train.job import run_project_round

    project = _project(tmp_path / "home", clips[:1])
    with pytest.raises(JobFailed) as failed:
        run_project_round(project.workspace, project.id, {**ROUND, "part_frames": -2})
    assert failed.value.code == "invalid_params"
