"""Jobs split into per-video parts (curator.jobs.dispatch) on the local dispatcher, which runs the
same part functions as ``curator worker --ray`` (tests/test_ray_worker.py runs them on Ray)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from benchmarks.scale import label_shot_starts, make_clips, run_job
from curator.config import Settings
from curator.jobs import ThreadJobRunner, engine_handlers
from curator.jobs.dispatch import LocalDispatcher, PartProgress
from curator.store import repo
from curator.store.models import Annotation, Embedding, Frame, Video
from curator.workspace import Workspace


def test_part_progress_sums_the_parts_and_estimates_those_not_started() -> None:
    board = PartProgress("ingest", [100, None, None])
    assert board.summed() == (0, 300)  # the two unknown parts count as the mean of the known ones
    board.update(1, 10, 50)
    assert board.summed() == (10, 225)
    board.update(0, 100, 100)
    board.finish(0)
    board.update(0, 3, 100)  # a late report of a finished part changes nothing
    assert board.summed() == (110, 225)
    board.finish(1)  # a finished part is complete, whatever it reported last
    assert board.summed() == (150, 225)
    board.update(2, 20, None)
    board.finish(2)  # one that never knew its total: what it did is its total
    assert board.summed() == (170, 170)


@pytest.fixture
def runner_home(settings: Settings) -> Iterator[tuple[Workspace, ThreadJobRunner, int]]:
    settings = settings.model_copy(update={"max_side": 96, "preannotate": False, "segment_warm": False})
    workspace = Workspace(settings)
    runner = ThreadJobRunner(workspace, engine_handlers(workspace), server=False)
    runner.start()
    with workspace.db.session() as session:
        project_id = repo.get_or_create_project(session, "parts").id
    yield workspace, runner, project_id
    runner.shutdown()
    workspace.close()


def test_a_project_ingest_embed_and_propagate_run_one_part_per_video(
    runner_home: tuple[Workspace, ThreadJobRunner, int], tmp_path: Path
) -> None:
    workspace, runner, project_id = runner_home
    clips = make_clips(tmp_path / "clips", 2, 12, width=96)
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    paths = [str(clips[0]), str(bad), str(clips[1])]
    ingest, _ = run_job(workspace, "ingest", project_id, {"paths": paths, "backbone": None}, submit=runner.submit)
    assert [v["frames"] for v in ingest["videos"]] == [12, 12] and ingest["frames"] == 24
    assert list(ingest["rejected"]) == ["notes.mp4"]  # the other files still went in
    assert ingest["embedded"] == 0

    embed, _ = run_job(workspace, "embed", project_id, {"backbone": "classic"}, submit=runner.submit)
    assert embed == {"embedded": 24, "backbone": "classic"}
    assert workspace.index_path(project_id, "classic").is_file()  # synced once, after the parts
    again, _ = run_job(workspace, "embed", project_id, {"backbone": "classic"}, submit=runner.submit)
    assert again["embedded"] == 0

    with pytest.raises(RuntimeError, match="no_keyframes"):
        run_job(workspace, "propagate", project_id, {"propagator": "flow"}, submit=runner.submit)
    keyframes = label_shot_starts(workspace, project_id)
    whole, _ = run_job(workspace, "propagate", project_id, {"propagator": "flow"}, submit=runner.submit)
    assert len(whole["videos"]) == 2 and whole["keyframes"] == keyframes
    assert whole["frames"] == 24 - keyframes and whole["propagator"] == "flow"
    with workspace.db.session() as session:
        video_id = session.scalars(select(Video.id).where(Video.project_id == project_id).order_by(Video.id)).first()
        embedded = session.scalar(select(func.count()).select_from(Embedding))
        propagated = session.scalar(
            select(func.count()).select_from(Annotation).where(Annotation.source == "propagated")
        )
    assert embedded == 24 and propagated == whole["masks"]
    one, _ = run_job(workspace, "propagate", project_id, {"video_id": video_id, "propagator": "flow"},
                     submit=runner.submit)
    assert set(one) == {"keyframes", "frames", "masks", "propagator"}  # a video's job keeps its shape
    with workspace.db.session() as session:
        frames = session.scalar(select(func.count()).select_from(Frame))
        again_propagated = session.scalar(
            select(func.count()).select_from(Annotation).where(Annotation.source == "propagated")
        )
    assert frames == 24 and again_propagated == propagated  # replaced, not added


class _Recording(LocalDispatcher):
    """The local dispatcher, keeping the params of every part it ran."""

    def __init__(self, backbones: Any) -> None:
        super().__init__(backbones)
        self.items: list[dict[str, Any]] = []

    def map(self, ctx: Any, stage: str, part: Any, items: Any, estimates: Any = None) -> list[dict[str, Any]]:
        self.items += [dict(i) for i in items]
        return super().map(ctx, stage, part, items, estimates)


@pytest.fixture
def recording_home(settings: Settings) -> Iterator[tuple[Workspace, ThreadJobRunner, _Recording, int]]:
    """A runner whose dispatcher records the parts it runs, and a project ``chunks``."""
    from curator.jobs.handlers import BackboneCache

    settings = settings.model_copy(update={"max_side": 96, "preannotate": False, "segment_warm": False})
    workspace = Workspace(settings)
    dispatcher = _Recording(BackboneCache(workspace))
    runner = ThreadJobRunner(workspace, engine_handlers(workspace, dispatcher=dispatcher), server=False)
    runner.start()
    with workspace.db.session() as session:
        project_id = repo.get_or_create_project(session, "chunks").id
    yield workspace, runner, dispatcher, project_id
    runner.shutdown()
    workspace.close()


def test_a_long_video_is_embedded_in_parts_of_part_frames(
    recording_home: tuple[Workspace, ThreadJobRunner, _Recording, int], tmp_path: Path
) -> None:
    workspace, runner, dispatcher, project_id = recording_home
    clips = make_clips(tmp_path / "clips", 2, 12, width=96)
    run_job(workspace, "ingest", project_id, {"paths": [str(c) for c in clips], "backbone": None},
            submit=runner.submit)
    dispatcher.items.clear()
    embed, _ = run_job(workspace, "embed", project_id, {"backbone": "classic", "part_frames": 5},
                       submit=runner.submit)
    assert embed == {"embedded": 24, "backbone": "classic"}
    chunks = [i["frame_ids"] for i in dispatcher.items]
    assert [len(c) for c in chunks] == [5, 5, 2, 5, 5, 2]  # 12 = 5 + 5 + 2 in each video
    with workspace.db.session() as session:
        frames = session.execute(select(Frame.id, Frame.video_id)).all()
        embedded = set(session.scalars(select(Embedding.frame_id)))
    assert sorted(f for c in chunks for f in c) == sorted(f for f, _ in frames) and len(embedded) == 24
    video_of = dict(frames)
    assert all(len({video_of[f] for f in c}) == 1 for c in chunks)  # a part stays within one video
    with pytest.raises(RuntimeError, match="invalid_params"):
        run_job(workspace, "embed", project_id, {"backbone": "classic", "part_frames": -1}, submit=runner.submit)


def _propagated(workspace: Workspace) -> dict[tuple[int, int], tuple[str, float]]:
    with workspace.db.session() as session:
        rows = session.execute(
            select(Annotation.frame_id, Annotation.object_id, Annotation.rle, Annotation.confidence)
            .where(Annotation.source == "propagated")
        ).all()
    return {(int(f), int(o)): (rle["counts"], round(float(c), 6)) for f, o, rle, c in rows}


@pytest.mark.parametrize("scope", ["video", "between"])
def test_a_long_video_is_propagated_in_parts_cut_at_keyframes_with_the_same_masks(
    recording_home: tuple[Workspace, ThreadJobRunner, _Recording, int], tmp_path: Path, scope: str
) -> None:
    from curator.annotate.masks import encode_rle

    workspace, runner, dispatcher, project_id = recording_home
    clips = make_clips(tmp_path / "clips", 2, 20, width=96)
    run_job(workspace, "ingest", project_id, {"paths": [str(c) for c in clips], "backbone": None},
            submit=runner.submit)
    with workspace.db.session() as session:
        frames = session.execute(
            select(Frame.id, Frame.video_id, Frame.width, Frame.height).order_by(Frame.video_id, Frame.frame_index)
        ).all()
        first_video = frames[0].video_id
        mine = [f for f in frames if f.video_id == first_video]
        for position, box in ((2, (10, 30)), (7, (20, 40)), (13, (5, 25)), (16, (30, 50))):
            f = mine[position]
            mask = np.zeros((f.height, f.width), dtype=np.uint8)
            mask[box[0] // 2 : box[1] // 2 + 8, box[0] : box[1]] = 1
            objects = [(1, encode_rle(mask))] + ([(2, encode_rle(1 - mask))] if position == 7 else [])
            repo.store_human_masks(session, f.id, objects)
        other = [f for f in frames if f.video_id != first_video][4]
        mask = np.zeros((other.height, other.width), dtype=np.uint8)
        mask[5:20, 10:40] = 1
        repo.store_human_masks(session, other.id, [(1, encode_rle(mask))])

    params = {"propagator": "flow", "scope": scope}
    whole, _ = run_job(workspace, "propagate", project_id, params, submit=runner.submit)
    masks = _propagated(workspace)
    dispatcher.items.clear()
    cut, _ = run_job(workspace, "propagate", project_id, {**params, "part_frames": 4}, submit=runner.submit)
    assert cut == whole  # the parts of a video summed into its result
    assert _propagated(workspace) == masks and len(masks) > 0
    spans = [tuple(i["span"]) for i in dispatcher.items if i["video_id"] == first_video]
    assert spans == [(0, 7), (7, 13), (13, 20)]  # cut at the keyframes 7 and 13, at least 4 apart

    single, _ = run_job(workspace, "propagate", project_id, {**params, "video_id": first_video, "part_frames": 4},
                        submit=runner.submit)
    assert single == {k: v for k, v in whole["videos"][0].items() if k != "video_id"}
    assert _propagated(workspace) == masks


def _frames_of(workspace: Workspace, project_id: int) -> list[tuple[int, float, str]]:
    with workspace.db.session() as session:
        rows = session.execute(
            select(Frame.frame_index, Frame.timestamp, Frame.content_hash)
            .join(Video, Video.id == Frame.video_id).where(Video.project_id == project_id).order_by(Frame.frame_index)
        ).all()
    return [(int(i), float(t), str(h)) for i, t, h in rows]


def test_a_long_file_is_ingested_in_parts_cut_at_keyframes(
    recording_home: tuple[Workspace, ThreadJobRunner, _Recording, int], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_ingest_chunks import write_scenes

    workspace, runner, dispatcher, project_id = recording_home
    clip = tmp_path / "scenes.mp4"
    write_scenes(clip)
    with workspace.db.session() as session:
        whole_id = repo.get_or_create_project(session, "whole").id
        fallback_id = repo.get_or_create_project(session, "fallback").id
    whole, _ = run_job(workspace, "ingest", whole_id, {"path": str(clip), "backbone": "classic"}, submit=runner.submit)
    assert [i.get("chunk") for i in dispatcher.items] == [None]  # 300 frames: one part by default
    dispatcher.items.clear()
    cut, _ = run_job(workspace, "ingest", project_id, {"path": str(clip), "backbone": "classic", "part_frames": 50},
                     submit=runner.submit)
    spans = [(i["chunk"]["first"], i["chunk"]["stop"]) for i in dispatcher.items]
    assert len(spans) >= 4 and spans[0][0] == 0 and spans[-1][1] == 300
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    same = ("frames", "decoded_frames", "shots", "embedded", "backbone", "created", "sample_fps", "sample_stride")
    assert {k: cut[k] for k in same} == {k: whole[k] for k in same}
    assert whole["parts"] == 1 and cut["parts"] == len(spans)
    assert cut["shots"] == 4 and cut["embedded"] == cut["frames"] == 300
    assert _frames_of(workspace, project_id) == _frames_of(workspace, whole_id)
    assert not list((workspace.blobs.root / ".staging").iterdir())  # the parts' folders are gone
    again, _ = run_job(workspace, "ingest", project_id, {"path": str(clip), "backbone": "classic", "part_frames": 50},
                       submit=runner.submit)
    assert not again["created"] and again["video_id"] == cut["video_id"]

    # a part whose frames are not the plan's: the file goes in whole
    from curator.ingest import chunks

    def mismatch(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise chunks.ChunkMismatch("frames differ after the seek")

    monkeypatch.setattr(chunks, "ingest_chunk", mismatch)
    dispatcher.items.clear()
    redone, _ = run_job(workspace, "ingest", fallback_id, {"path": str(clip), "backbone": "classic", "part_frames": 50},
                        submit=runner.submit)
    assert [i.get("chunk") is None for i in dispatcher.items][-1] and len(dispatcher.items) == len(spans) + 1
    assert _frames_of(workspace, fallback_id) == _frames_of(workspace, whole_id)
    assert redone["shots"] == 4 and redone["parts"] == 1
    with pytest.raises(RuntimeError, match="invalid_params"):
        run_job(workspace, "ingest", fallback_id, {"path": str(clip), "part_frames": 0}, submit=runner.submit)
