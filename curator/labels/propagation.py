"""Propagating a video's human masks to its other stored frames, stored as ``propagated`` annotations.

The job handler (:func:`curator.jobs.handlers.propagate_handler`) and :meth:`curator.project.Project.propagate`
both run :func:`propagate_video` (a long video in parts: :func:`propagate_video_part`); failures are :class:`~curator.jobs.base.JobFailed` with a stable code
either way.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, select

from curator.store.blobs import read_rgb
from curator.store.models import Annotation, Frame, Video
from curator.workspace import Workspace

if TYPE_CHECKING:
    from curator.annotate import FrameSource, Keyframe
    from curator.jobs.base import JobFailed

#: ``(frame id, object id, COCO RLE, confidence)`` of one propagated mask.
_Mask = tuple[int, int, dict[str, Any], float]


def _failed(code: str, message: str) -> JobFailed:
    # imported on use: curator.jobs re-exports propagate_video, so importing it at module level
    # would make the two modules import each other
    from curator.jobs.base import JobFailed

    return JobFailed(code, message)


def propagate_video(
    workspace: Workspace,
    video_id: int,
    propagator: Any,
    *,
    scope: str = "video",
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Propagate a video's human masks to its other stored frames; store them as ``propagated``.

    The keyframes are the video's frames with human annotations. ``scope="video"`` (the default)
    covers every stored frame; ``"between"`` only the frames from the first to the last keyframe.
    Earlier propagated masks on those frames are replaced; frames with human masks are never touched.
    Results are written in one transaction at the end, so a cancelled or failed run stores nothing.

    Args:
        workspace: Where the video's frames and masks are.
        video_id: The video.
        propagator: A propagator (see :func:`curator.annotate.create_propagator`).
        scope: ``video`` or ``between``.
        progress: Called with ``("propagate", done_frames, span_frames)``.
        cancel: Passed to the propagator, which stops when it returns True.

    Returns:
        Counts: ``keyframes``, ``frames`` (propagated frames) and ``masks`` stored.

    Raises:
        JobFailed: If ``scope`` is unknown, the video does not exist, has no non-empty human masks,
            or a frame's image is missing.
    """
    frames, by_frame, lo, hi = _scoped(workspace, video_id, scope)
    span = frames[lo : hi + 1]
    keyframes = _keyframes(by_frame, lo, hi, video_id)
    source = _frame_source(workspace, span)
    masks, propagated = _propagate_span(propagator, source, keyframes, span, lo, by_frame, progress, cancel)
    _replace_propagated(workspace, propagated, masks)
    return {"keyframes": len(keyframes), "frames": len(propagated), "masks": len(masks)}


def propagate_to_frames(
    workspace: Workspace,
    video_id: int,
    frame_ids: Sequence[int],
    propagator: Any,
    *,
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Propagate a video's human masks to some of its frames only; store them as ``propagated``.

    What :func:`propagate_video` does, restricted to what ``frame_ids`` need: the propagator runs over
    the stretch from the nearest keyframe before the first of them (or their first frame, if no
    keyframe is before it) to the nearest keyframe after the last (or their last frame), and only
    the masks of ``frame_ids`` are stored (their earlier ``propagated`` masks are replaced). Frames
    with human masks and ids not of this video are left alone.

    Returns:
        Counts: ``keyframes`` used, ``frames`` given a result, ``masks`` stored and ``span`` (frames
        the propagator ran over).

    Raises:
        JobFailed: If the video does not exist, has no non-empty human masks, or a frame's image is missing.
    """
    frames, by_frame = _human_masks(workspace, video_id)
    position = {row.id: i for i, row in enumerate(frames)}
    wanted = sorted({position[int(f)] for f in frame_ids if int(f) in position} - set(by_frame))
    return _propagate_to_positions(workspace, video_id, frames, by_frame, wanted, propagator, progress, cancel)


def _propagate_to_positions(
    workspace: Workspace,
    video_id: int,
    frames: Sequence[Any],
    by_frame: dict[int, dict[int, Any]],
    wanted: list[int],
    propagator: Any,
    progress: Callable[[str, int, int | None], None] | None,
    cancel: Callable[[], bool] | None,
) -> dict[str, Any]:
    """:func:`propagate_to_frames` for the sorted positions ``wanted`` (none with human masks) of
    the video's ``frames`` and its human masks ``by_frame`` (as :func:`_human_masks` read them)."""
    if not wanted:
        return {"keyframes": 0, "frames": 0, "masks": 0, "span": 0}
    keyed = sorted(i for i, masks in by_frame.items() if any(_nonempty(m) for m in masks.values()))
    if not keyed:
        raise _failed("no_keyframes", f"video {video_id} has only empty human masks")
    before = [k for k in keyed if k <= wanted[0]]
    after = [k for k in keyed if k >= wanted[-1]]
    # the span always holds a keyframe: one bounds it, or every keyframe lies between the targets
    lo = before[-1] if before else wanted[0]
    hi = after[0] if after else wanted[-1]
    span = frames[lo : hi + 1]
    keyframes = _keyframes(by_frame, lo, hi, video_id)
    source = _frame_source(workspace, span)
    masks, _ = _propagate_span(propagator, source, keyframes, span, lo, by_frame, progress, cancel)
    targets = {frames[i].id for i in wanted}
    stored = [m for m in masks if m[0] in targets]
    _replace_propagated(workspace, sorted(targets), stored)
    return {"keyframes": len(keyframes), "frames": len({m[0] for m in stored}), "masks": len(stored), "span": len(span)}


def propagate_video_part(
    workspace: Workspace,
    video_id: int,
    first: int,
    stop: int,
    propagator: Any,
    *,
    scope: str = "video",
    progress: Callable[[str, int, int | None], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """What :func:`propagate_video` stores for the frames at positions ``first <= i < stop`` of the
    video (in frame order) only: one part of a long video's propagation.

    A propagated frame's masks depend only on the keyframes that bracket it in its shot, so the
    propagator runs over the stretch between the nearest keyframes around the part
    (:func:`propagate_to_frames`) and the masks equal the whole video's; parts cut at keyframes
    track no frame twice. Summed over parts that cover the video, the counts are
    :func:`propagate_video`'s.

    Returns:
        Counts: ``keyframes`` (those inside the part), ``frames`` and ``masks`` stored.

    Raises:
        JobFailed: As :func:`propagate_video`.
    """
    frames, by_frame, lo, hi = _scoped(workspace, video_id, scope)
    keyframes = [k.index + lo for k in _keyframes(by_frame, lo, hi, video_id)]
    wanted = [i for i in range(max(first, lo), min(stop, hi + 1)) if i not in by_frame]
    done = _propagate_to_positions(workspace, video_id, frames, by_frame, wanted, propagator, progress, cancel)
    return {"keyframes": sum(1 for k in keyframes if first <= k < stop), "frames": len(wanted), "masks": done["masks"]}


def part_cuts(frames: int, labelled: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Cut ``frames`` positions into parts of about ``size`` frames at labelled positions
    (``labelled``: sorted positions of frames with human masks), so that a part's propagation
    tracks no frame another part tracks; keyframes further apart than ``size`` make longer parts."""
    cuts = [0]
    for k in labelled:
        if k - cuts[-1] >= size and k < frames:
            cuts.append(k)
    return list(itertools.pairwise([*cuts, frames]))


def _scoped(
    workspace: Workspace, video_id: int, scope: str
) -> tuple[Sequence[Any], dict[int, dict[int, Any]], int, int]:
    """The video's frames and human masks (:func:`_human_masks`) and the positions ``lo..hi`` that
    ``scope`` covers: every frame (``video``), or the first to the last human-labelled one (``between``).

    Raises:
        JobFailed: ``invalid_params`` for another scope, or as :func:`_human_masks`.
    """
    if scope not in ("between", "video"):
        raise _failed("invalid_params", f"scope must be 'between' or 'video', got {scope!r}")
    frames, by_frame = _human_masks(workspace, video_id)
    labelled = sorted(by_frame)
    lo, hi = (labelled[0], labelled[-1]) if scope == "between" else (0, len(frames) - 1)
    return frames, by_frame, lo, hi


def _nonempty(rle: dict[str, Any]) -> bool:
    from curator.annotate.masks import decode_rle

    return bool(decode_rle(rle).any())


def _human_masks(workspace: Workspace, video_id: int) -> tuple[Sequence[Any], dict[int, dict[int, Any]]]:
    """The video's frames in order (``id``, ``blob_path``, ``shot_id``) and, per position among them,
    the human RLE masks by object id.

    Raises:
        JobFailed: If the video does not exist or has no human masks.
    """
    with workspace.db.session() as session:
        if session.get(Video, video_id) is None:
            raise _failed("not_found", f"no video {video_id}")
        frames = session.execute(
            select(Frame.id, Frame.blob_path, Frame.shot_id)
            .where(Frame.video_id == video_id)
            .order_by(Frame.frame_index)
        ).all()
        human = session.execute(
            select(Annotation.frame_id, Annotation.object_id, Annotation.rle)
            .join(Frame, Frame.id == Annotation.frame_id)
            .where(Frame.video_id == video_id, Annotation.source == "human")
        ).all()
    position = {row.id: i for i, row in enumerate(frames)}
    by_frame: dict[int, dict[int, Any]] = {}
    for frame_id, object_id, rle in human:
        by_frame.setdefault(position[frame_id], {})[int(object_id)] = rle
    if not by_frame:
        raise _failed("no_keyframes", f"video {video_id} has no human masks to propagate from")
    return frames, by_frame


def _keyframes(by_frame: dict[int, dict[int, Any]], lo: int, hi: int, video_id: int) -> list[Keyframe]:
    """Keyframes (indexed from ``lo``) of the human masks on positions ``lo..hi``, empty masks left out.

    Raises:
        JobFailed: If every one of those masks is empty.
    """
    from curator.annotate import Keyframe
    from curator.annotate.masks import decode_rle

    keyframes = [
        Keyframe(i - lo, {k: decode_rle(v) for k, v in by_frame[i].items() if decode_rle(v).any()})
        for i in sorted(by_frame)
        if lo <= i <= hi
    ]
    keyframes = [k for k in keyframes if k.masks]
    if not keyframes:
        raise _failed("no_keyframes", f"video {video_id} has only empty human masks")
    return keyframes


def _frame_source(workspace: Workspace, span: Sequence[Any]) -> FrameSource:
    """The images of ``span``'s frames, read from the blob store when the propagator asks."""
    from curator.annotate import FrameSource

    blobs = workspace.blobs

    def load(i: int) -> np.ndarray:
        try:
            return read_rgb(blobs.path(span[i].blob_path))
        except FileNotFoundError:
            raise _failed("frame_missing", f"cannot read the image of frame {span[i].id}") from None

    return FrameSource(load, num_frames=len(span))


def _propagate_span(
    propagator: Any,
    source: FrameSource,
    keyframes: list[Keyframe],
    span: Sequence[Any],
    lo: int,
    by_frame: dict[int, dict[int, Any]],
    progress: Callable[[str, int, int | None], None] | None,
    cancel: Callable[[], bool] | None,
) -> tuple[list[_Mask], list[int]]:
    """Run the propagator over ``span`` (position ``lo`` onwards in the video).

    Returns:
        The non-empty masks of the frames without human masks, and those frames' ids.
    """
    from curator.annotate.masks import encode_rle

    shot_ids = np.array([row.shot_id if row.shot_id is not None else -1 for row in span])
    total = len(span)

    def report(done: int, _total: int) -> None:
        if progress is not None:
            progress("propagate", done, total)

    out: list[_Mask] = []
    propagated_frames: list[int] = []
    stream: Iterator[Any] = propagator.propagate(
        source, keyframes, shot_ids=shot_ids, progress=report, cancel=cancel
    )
    for result in stream:
        if result.is_keyframe or (result.index + lo) in by_frame:
            continue
        frame_id = span[result.index].id
        propagated_frames.append(frame_id)
        for object_id, mask in result.masks.items():
            if mask.any():
                out.append((frame_id, int(object_id), encode_rle(mask), float(result.confidence[object_id])))
    return out, propagated_frames


def _replace_propagated(workspace: Workspace, frame_ids: list[int], masks: list[_Mask]) -> None:
    """In one transaction, drop the ``propagated`` masks of ``frame_ids`` and store ``masks``."""
    with workspace.db.session() as session:
        for chunk in range(0, len(frame_ids), 500):
            ids = frame_ids[chunk : chunk + 500]
            session.execute(
                delete(Annotation).where(Annotation.frame_id.in_(ids), Annotation.source == "propagated")
            )
        session.add_all(
            Annotation(frame_id=f, object_id=o, source="propagated", rle=r, confidence=c)
            for f, o, r, c in masks
        )
