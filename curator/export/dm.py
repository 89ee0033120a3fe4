"""Datumaro's own format, the CVAT-ready export: one subset per video, every object a track.

Inside the zip, per video folder ``<video>`` (a Datumaro subset, which CVAT imports as one task):

- ``annotations/<video>.json``: Datumaro 1.0 (``dm_format_version``), labels = the project's
  categories (with their colours as the mask colormap), one item per labelled frame with id
  ``<frame index, 5 digits>`` and ``attr.frame`` its position among the video's exported frames
  (CVAT's frame number when the images are uploaded as one task), plus curator's ``frame_id``,
  ``frame_index`` and ``video_id``.
- ``images/<video>/<frame>.jpg``: the frames (left out when asked for no images).

Each mask is a ``mask`` annotation (COCO RLE) whose ``attributes`` carry ``track_id`` (the object id:
one track per object across the video's frames), ``keyframe`` (``true`` for human masks, ``false``
for propagated or predicted ones), ``score`` (the confidence), ``source`` and ``object_id``; its
``group`` is the object id. Datumaro's exporter writes the same structure; CVAT's Datumaro import
turns annotations with ``track_id`` and ``keyframe`` into tracks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from curator.export.davis import label_map
from curator.export.rows import FrameRow, LabelSchema, MaskRow, label_schema, open_session, project_name, walk
from curator.export.zipstream import Spool, ZipStream
from curator.workspace import Workspace

FORMAT_VERSION = "1.0"
MEDIA_IMAGE = 2  # datumaro.components.media.MediaType.IMAGE
#: Attributes of every mask (declared on each label, so CVAT creates them with the labels).
ATTRIBUTES = ("track_id", "keyframe", "score", "source", "object_id")


def categories(schema: LabelSchema) -> dict[str, Any]:
    """Datumaro's ``categories``: labels (index = ``label_id``) and the mask colormap."""
    colors = label_map(schema)[1:]
    return {
        "label": {"labels": [{"name": name, "parent": "", "attributes": list(ATTRIBUTES)} for name, _ in colors],
                  "label_groups": [], "attributes": []},
        "mask": {"colormap": [{"label_id": i, "r": r, "g": g, "b": b} for i, (_, (r, g, b)) in enumerate(colors)]},
    }


def item(f: FrameRow, found: list[MaskRow], position: int, label_of: dict[int, int]) -> dict[str, Any]:
    """One frame as a Datumaro item (see the module docstring)."""
    annotations = [
        {"id": m.id, "type": "mask", "group": m.object_id, "label_id": label_of[m.object_id], "z_order": 0,
         "rle": m.rle, "attributes": {"track_id": m.object_id, "keyframe": m.source == "human",
                                      "score": m.confidence, "source": m.source, "object_id": m.object_id}}
        for m in found
    ]
    return {"id": f"{f.frame_index:05d}", "annotations": annotations,
            "attr": {"frame": position, "frame_id": f.id, "frame_index": f.frame_index, "video_id": f.video_id},
            "image": {"path": f"{f.frame_index:05d}.jpg", "size": [f.height, f.width]}}


def _subset(head: str, items: Spool) -> Iterator[bytes]:
    yield head.encode()
    yield from items.chunks()
    yield b"]}"


def datumaro(workspace: Workspace, project_id: int, include: str, images: bool = True) -> Iterator[bytes]:
    """The Datumaro zip (see the module docstring); without ``images`` it leaves out ``images/``."""
    out = ZipStream()
    session = open_session(workspace)
    try:
        schema = label_schema(session, project_id, include)
        index = {c["id"]: i for i, c in enumerate(schema.categories)}
        # objects that are never exported may lack an exported category (every exported one has one)
        label_of = {k: index.get(schema.category_id(k), 0) for k in range(256)}
        info = {"curator_project": project_name(session, project_id), "include": include}
        head = (f'{{"dm_format_version": "{FORMAT_VERSION}", "media_type": {MEDIA_IMAGE}, '
                f'"infos": {json.dumps(info)}, "categories": {json.dumps(categories(schema))}, "items": [')
        video: str | None = None
        items = Spool()
        position = 0
        for f, found in walk(session, project_id, include):
            if f.video_name != video:
                if video is not None:
                    yield from out.stream(f"annotations/{video}.json", _subset(head, items))
                video, items, position = f.video_name, Spool(), 0
            items.write(("" if position == 0 else ", ") + json.dumps(item(f, found, position, label_of)))
            position += 1
            if images:
                yield out.add_file(f"images/{f.file_name}", workspace.blobs.path(f.blob_path))
        if video is not None:
            yield from out.stream(f"annotations/{video}.json", _subset(head, items))
    finally:
        session.close()
    yield from out.finish()
