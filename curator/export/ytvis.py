"""YouTube-VIS: a JSON file, or a zip with the frames under ``JPEGImages/<video folder>/``.

``videos`` list only the labelled frames (``file_names``, paths under ``JPEGImages/``, and curator's
``frame_ids``); each annotation is one object's track through its video: a segmentation (COCO RLE, or
``null`` where the object is absent), an area and a box per listed frame, its category, and curator's
``object_id``, ``scores`` (the masks' confidences) and ``sources`` (their provenance) per frame. The
zip holds ``instances.json`` and ``JPEGImages/``, YouTube-VIS's own layout.

Tracks are written one object at a time from a temporary file per object of the current video, so
memory does not grow with the length of a video.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from curator.export.rows import (
    FrameRow,
    LabelSchema,
    MaskRow,
    area_bbox,
    frames,
    label_schema,
    open_session,
    project_name,
    walk,
    zip_with_images,
)
from curator.export.zipstream import Spool
from curator.workspace import Workspace

ANNOTATIONS = "instances.json"
_FIELDS = ("segmentations", "areas", "bboxes", "scores", "sources")


def _videos(session: Any, project_id: int, include: str) -> Iterator[str]:
    """The ``videos`` list's entries, piece by piece (frame ids spooled per video)."""
    current: int | None = None
    ids: Spool | None = None
    count = 0

    def close() -> Iterator[str]:
        assert ids is not None
        yield '], "frame_ids": ['
        yield from (block.decode() for block in ids.chunks())
        yield f'], "length": {count}}}'

    for f in frames(session, project_id, include):
        if f.video_id != current:
            if ids is not None:
                yield from close()
                yield ", "
            current, count, ids = f.video_id, 0, Spool()
            yield f'{{"id": {f.video_id}, "name": {json.dumps(f.video_name)}, "width": {f.width}, "height": {f.height}, "file_names": ['
        yield ("" if count == 0 else ", ") + json.dumps(f.file_name)
        assert ids is not None
        ids.write(("" if count == 0 else ", ") + str(f.id))
        count += 1
    if ids is not None:
        yield from close()


class _Tracks:
    """One video's tracks: per object a temporary file of ``[position, rle, area, bbox, score, source]`` lines."""

    def __init__(self, frame: FrameRow) -> None:
        self.video_id, self.height, self.width = frame.video_id, frame.height, frame.width
        self.length = 0
        self.files: dict[int, IO[str]] = {}

    def add(self, found: list[MaskRow]) -> None:
        for m in found:
            area, bbox = area_bbox(m.rle)
            out = self.files.get(m.object_id)
            if out is None:
                out = self.files[m.object_id] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by write())
            out.write(json.dumps([self.length, m.rle, area, bbox, m.confidence, m.source]) + "\n")
        self.length += 1

    def write(self, schema: LabelSchema, next_id: int) -> Iterator[str]:
        """Each track as JSON pieces, ids from ``next_id`` on; the temporary files are closed."""
        for n, object_id in enumerate(sorted(self.files)):
            out = self.files[object_id]
            head = {
                "id": next_id + n,
                "video_id": self.video_id,
                "category_id": schema.category_id(object_id),
                "iscrowd": 0,
                "object_id": object_id,
                "height": self.height,
                "width": self.width,
                "length": 1,
            }
            yield json.dumps(head)[:-1]
            for field, name in enumerate(_FIELDS, start=1):
                yield f', "{name}": ['
                out.seek(0)
                position = 0
                for line in out:
                    row = json.loads(line)
                    yield (
                        "null, " * (row[0] - position)
                        + json.dumps(row[field])
                        + ("" if row[0] == self.length - 1 else ", ")
                    )
                    position = row[0] + 1
                yield ", ".join(["null"] * (self.length - position)) + "]"
            yield "}" + ("" if n == len(self.files) - 1 else ", ")
            out.close()


def ytvis_json(workspace: Workspace, project_id: int, include: str) -> Iterator[bytes]:
    """The YouTube-VIS JSON, piece by piece: ``videos``, then one annotation per object track."""
    session = open_session(workspace)
    try:
        info = {"description": f"curator project {project_name(session, project_id)}", "include": include}
        schema = label_schema(session, project_id, include)
        yield (
            f'{{"info": {json.dumps(info)}, "categories": {json.dumps(schema.categories)}, "videos": ['
        ).encode()
        for piece in _videos(session, project_id, include):
            yield piece.encode()
        yield b'], "annotations": ['
        tracks: _Tracks | None = None
        next_id, sep = 1, ""
        for f, found in walk(session, project_id, include):
            if tracks is None or tracks.video_id != f.video_id:
                if tracks is not None and tracks.files:
                    yield sep.encode()
                    for piece in tracks.write(schema, next_id):
                        yield piece.encode()
                    next_id, sep = next_id + len(tracks.files), ", "
                tracks = _Tracks(f)
            tracks.add(found)
        if tracks is not None and tracks.files:
            yield sep.encode()
            for piece in tracks.write(schema, next_id):
                yield piece.encode()
        yield b"]}"
    finally:
        session.close()


def ytvis(workspace: Workspace, project_id: int, include: str, images: bool = False) -> Iterator[bytes]:
    """YouTube-VIS: the JSON alone, or with ``images`` a zip of ``JPEGImages/`` and ``instances.json``."""
    if not images:
        yield from ytvis_json(workspace, project_id, include)
        return
    yield from zip_with_images(
        workspace, project_id, include, "JPEGImages", ANNOTATIONS, ytvis_json(workspace, project_id, include)
    )
