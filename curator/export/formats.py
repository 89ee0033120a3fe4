"""Streamed dataset exports: COCO instance segmentation, DAVIS-style PNG folders in a zip, YouTube-VIS.

Only labelled frames go out: frames with masks of the requested sources, or whose task was submitted
with no object. Rows are read in chunks (``yield_per``) and the output is produced piece by piece, so
an export never holds every frame or mask of a project in memory.

``include="human"`` exports human masks only; ``include="all"`` takes, per frame, the masks of the
best source present (human over propagated over predicted).

Categories: a project without categories exports one category, ``object`` (id 1), for every mask.
A project with categories (:class:`curator.store.models.Category`) exports them under their ids,
and each mask gets its object's category (:class:`curator.store.models.ObjectCategory`); objects
without one get the project's category named ``object`` if it has one, else an extra category
``object`` with id 0, listed only when such an object is exported. The DAVIS zip carries the same
as ``palette.json``: the categories, and per object id its category and PNG palette colour.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import case, select, union
from sqlalchemy.orm import Session

from curator.store.models import Annotation, Category, Frame, ObjectCategory, Project, Task, Video, utcnow
from curator.store.repo import video_folder
from curator.workspace import Workspace

SOURCES = {"human": ("human",), "all": ("human", "propagated", "predicted")}
CATEGORY: dict[str, Any] = {"id": 1, "name": "object", "supercategory": "object"}
#: The category of objects without one, in a project that has categories but none named ``object``.
UNASSIGNED: dict[str, Any] = {"id": 0, "name": "object", "supercategory": "object"}
_CHUNK = 500


@dataclass(frozen=True)
class LabelSchema:
    """The categories an export lists, and the category of each object id."""

    categories: list[dict[str, Any]]
    of_object: dict[int, int]
    default_id: int

    def category_id(self, object_id: int) -> int:
        """The category id of ``object_id`` (the default for objects without one)."""
        return self.of_object.get(object_id, self.default_id)

    def legend(self, object_ids: Any) -> dict[str, dict[str, Any]]:
        """Per object id (as a string): ``category_id``, ``category`` (name), ``color`` (the category's
        ``#rrggbb``, ``None`` for the default ``object``) and ``palette_color`` (its DAVIS PNG index colour)."""
        from curator.annotate.masks import DAVIS_PALETTE

        by_id = {c["id"]: c for c in self.categories}
        out = {}
        for object_id in sorted(object_ids):
            category = by_id.get(self.category_id(object_id), CATEGORY)
            rgb = DAVIS_PALETTE[3 * object_id : 3 * object_id + 3] if 0 <= object_id < 256 else [0, 0, 0]
            out[str(object_id)] = {
                "category_id": category["id"], "category": category["name"], "color": category.get("color"),
                "palette_color": "#{:02x}{:02x}{:02x}".format(*rgb),
            }
        return out


def _label_schema(session: Session, project_id: int, include: str) -> LabelSchema:
    """The project's categories as exported (see the module docstring)."""
    rows = list(session.scalars(select(Category).where(Category.project_id == project_id).order_by(Category.id)))
    if not rows:
        return LabelSchema([CATEGORY], {}, CATEGORY["id"])
    of_object = {
        int(o): int(c)
        for o, c in session.execute(
            select(ObjectCategory.object_id, ObjectCategory.category_id).where(ObjectCategory.project_id == project_id)
        )
    }
    categories = [{"id": c.id, "name": c.name, "supercategory": "object", "color": c.color} for c in rows]
    default = next((c.id for c in rows if c.name == UNASSIGNED["name"]), None)
    if default is not None:
        return LabelSchema(categories, of_object, default)
    exported = session.scalars(
        select(Annotation.object_id)
        .join(Frame, Frame.id == Annotation.frame_id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.project_id == project_id, Annotation.source.in_(SOURCES[include]))
        .distinct()
    )
    if any(int(o) not in of_object for o in exported):
        categories.insert(0, dict(UNASSIGNED))
    return LabelSchema(categories, of_object, int(UNASSIGNED["id"]))


@dataclass(frozen=True)
class FrameRow:
    """A labelled frame to export."""

    id: int
    video_id: int
    video_name: str
    frame_index: int
    timestamp: float
    width: int
    height: int
    blob_path: str

    @property
    def file_name(self) -> str:
        """Path of the image inside an export: ``<video folder>/<frame index>.jpg``."""
        return f"{self.video_name}/{self.frame_index:05d}.jpg"


def _frames(session: Session, project_id: int, include: str) -> Iterator[FrameRow]:
    labelled = union(
        select(Annotation.frame_id)
        .join(Frame, Frame.id == Annotation.frame_id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.project_id == project_id, Annotation.source.in_(SOURCES[include])),
        select(Task.frame_id).where(Task.project_id == project_id, Task.state == "done"),
    ).subquery()
    stmt = (
        select(Frame.id, Frame.video_id, Video.filename, Frame.frame_index, Frame.timestamp, Frame.width,
               Frame.height, Frame.blob_path)
        .join(Video, Video.id == Frame.video_id)
        .where(Frame.id.in_(select(labelled.c[0])))
        .order_by(Frame.video_id, Frame.frame_index)
        .execution_options(yield_per=_CHUNK)
    )
    for r in session.execute(stmt):
        yield FrameRow(r[0], r[1], video_folder(r[1], r[2]), r[3], r[4], r[5], r[6], r[7])


@dataclass(frozen=True)
class MaskRow:
    """One exported mask."""

    id: int
    frame_id: int
    video_id: int
    object_id: int
    source: str
    confidence: float
    rle: dict[str, Any]


def _masks(session: Session, project_id: int, include: str) -> Iterator[MaskRow]:
    """Masks in (video, frame) order; per frame only those of the best source present."""
    rank = case((Annotation.source == "human", 0), (Annotation.source == "propagated", 1), else_=2)
    stmt = (
        select(Annotation.id, Annotation.frame_id, Frame.video_id, Annotation.object_id, Annotation.source,
               Annotation.confidence, Annotation.rle, rank)
        .join(Frame, Frame.id == Annotation.frame_id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.project_id == project_id, Annotation.source.in_(SOURCES[include]))
        .order_by(Frame.video_id, Frame.frame_index, Annotation.frame_id, rank, Annotation.object_id, Annotation.id)
        .execution_options(yield_per=_CHUNK)
    )
    current, best = None, None
    for r in session.execute(stmt):
        if r[1] != current:
            current, best = r[1], r[7]
        if r[7] != best:
            continue
        yield MaskRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


def _area_bbox(rle: dict[str, Any]) -> tuple[int, list[float]]:
    from pycocotools import mask as mask_utils

    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(coded)), [float(v) for v in mask_utils.toBbox(coded)]


def _session(workspace: Workspace) -> Session:
    return workspace.db.sessionmaker()


def coco(workspace: Workspace, project_id: int, include: str) -> Iterator[bytes]:
    """COCO instance segmentation JSON: ``images`` (one per frame), ``annotations`` with RLE masks."""
    session = _session(workspace)
    try:
        project = session.get(Project, project_id)
        info = {"description": f"curator project {project.name if project else project_id}",
                "date_created": utcnow().isoformat(), "include": include}
        schema = _label_schema(session, project_id, include)
        yield (f'{{"info": {json.dumps(info)}, "licenses": [], "categories": {json.dumps(schema.categories)}, '
               '"images": [').encode()
        sep = ""
        for f in _frames(session, project_id, include):
            image = {"id": f.id, "file_name": f.file_name, "width": f.width, "height": f.height,
                     "video_id": f.video_id, "frame_index": f.frame_index, "timestamp": f.timestamp}
            yield (sep + json.dumps(image)).encode()
            sep = ", "
        yield b'], "annotations": ['
        sep = ""
        for m in _masks(session, project_id, include):
            area, bbox = _area_bbox(m.rle)
            ann = {"id": m.id, "image_id": m.frame_id, "category_id": schema.category_id(m.object_id),
                   "segmentation": m.rle, "area": area,
                   "bbox": bbox, "iscrowd": 0, "object_id": m.object_id, "source": m.source,
                   "confidence": m.confidence}
            yield (sep + json.dumps(ann)).encode()
            sep = ", "
        yield b"]}"
    finally:
        session.close()


class _Chunks(io.RawIOBase):
    """A write-only, unseekable sink: :class:`zipfile.ZipFile` writes into it, we hand the bytes on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def davis(workspace: Workspace, project_id: int, include: str) -> Iterator[bytes]:
    """A zip of ``JPEGImages/<video>/<frame>.jpg`` and ``Annotations/<video>/<frame>.png`` (indexed
    palette PNGs, 0 background, ``k`` object ``k``), plus ``frames.json`` mapping files to frame ids and
    ``palette.json``, the legend: ``categories`` and, per object id, its category's id, name and
    colour and its colour in the PNG palette."""
    import numpy as np

    from curator.annotate.masks import decode_rle, masks_to_labels

    session = _session(workspace)
    sink = _Chunks()
    try:
        schema = _label_schema(session, project_id, include)
        masks = _masks(session, project_id, include)
        pending = next(masks, None)
        index: list[dict[str, Any]] = []
        seen: set[int] = set()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
            for f in _frames(session, project_id, include):
                objects: dict[int, np.ndarray] = {}
                while pending is not None and pending.frame_id == f.id:
                    objects[pending.object_id] = decode_rle(pending.rle)
                    pending = next(masks, None)
                seen.update(objects)
                labels = masks_to_labels({k: v for k, v in objects.items() if 1 <= k <= 255}, (f.height, f.width))
                png = io.BytesIO()
                from PIL import Image

                from curator.annotate.masks import DAVIS_PALETTE

                image = Image.fromarray(labels, mode="P")
                image.putpalette(DAVIS_PALETTE)
                image.save(png, format="PNG")
                stem = f.file_name.rsplit(".", 1)[0]
                archive.writestr(f"Annotations/{stem}.png", png.getvalue())
                archive.write(workspace.blobs.path(f.blob_path), f"JPEGImages/{f.file_name}")
                index.append({"frame_id": f.id, "video_id": f.video_id, "frame_index": f.frame_index,
                              "image": f"JPEGImages/{f.file_name}", "annotation": f"Annotations/{stem}.png",
                              "objects": sorted(objects)})
                yield sink.take()
            archive.writestr("frames.json", json.dumps({"project_id": project_id, "include": include,
                                                         "frames": index}))
            archive.writestr("palette.json", json.dumps({"categories": schema.categories,
                                                          "objects": schema.legend(seen)}))
        yield sink.take()
    finally:
        session.close()


def ytvis(workspace: Workspace, project_id: int, include: str) -> Iterator[bytes]:
    """YouTube-VIS JSON: ``videos`` list only the labelled frames (``file_names``); each annotation is
    one object track with a segmentation (RLE or null) per listed frame."""
    session = _session(workspace)
    try:
        videos: list[dict[str, Any]] = []
        positions: dict[int, tuple[int, int]] = {}  # frame id -> (video id, position in file_names)
        for f in _frames(session, project_id, include):
            if not videos or videos[-1]["id"] != f.video_id:
                videos.append({"id": f.video_id, "width": f.width, "height": f.height, "length": 0,
                               "file_names": [], "frame_ids": []})
            video = videos[-1]
            positions[f.id] = (f.video_id, video["length"])
            video["file_names"].append(f.file_name)
            video["frame_ids"].append(f.id)
            video["length"] += 1
        info = {"description": f"curator project {project_id}", "include": include}
        schema = _label_schema(session, project_id, include)
        yield (f'{{"info": {json.dumps(info)}, "categories": {json.dumps(schema.categories)}, '
               f'"videos": {json.dumps(videos)}, "annotations": [').encode()
        lengths = {v["id"]: (v["length"], v["height"], v["width"]) for v in videos}
        sep, next_id = "", 1
        tracks: dict[int, dict[str, Any]] = {}
        current_video: int | None = None

        def flush() -> Iterator[str]:
            nonlocal next_id
            for object_id in sorted(tracks):
                track = tracks[object_id]
                track["id"] = next_id
                next_id += 1
                yield json.dumps(track)
            tracks.clear()

        for m in _masks(session, project_id, include):
            if m.video_id != current_video:
                for text in flush():
                    yield (sep + text).encode()
                    sep = ", "
                current_video = m.video_id
            video_id, pos = positions[m.frame_id]
            length, height, width = lengths[video_id]
            track = tracks.get(m.object_id)
            if track is None:
                track = tracks[m.object_id] = {
                    "id": 0, "video_id": video_id, "category_id": schema.category_id(m.object_id), "iscrowd": 0,
                    "object_id": m.object_id,
                    "height": height, "width": width, "length": 1,
                    "segmentations": [None] * length, "areas": [None] * length, "bboxes": [None] * length,
                }
            area, bbox = _area_bbox(m.rle)
            track["segmentations"][pos] = m.rle
            track["areas"][pos] = area
            track["bboxes"][pos] = bbox
        for text in flush():
            yield (sep + text).encode()
            sep = ", "
        yield b"]}"
    finally:
        session.close()


EXPORTERS = {"coco": (coco, "application/json", "json"), "davis": (davis, "application/zip", "zip"),
             "ytvis": (ytvis, "application/json", "json")}


def write_export(workspace: Workspace, project_id: int, format: str, include: str, dest: Path) -> Path:
    """Write an export to ``dest``: a file, or a folder (existing, or a path without a suffix) that gets
    ``<project>-<format>-<include>.<ext>``.

    The bytes go to a temporary file beside the destination that is renamed once complete, so an
    interrupted export never leaves a truncated file under the final name.

    Raises:
        ValueError: For an unknown format or include.
    """
    if format not in EXPORTERS:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(EXPORTERS)}")
    if include not in SOURCES:
        raise ValueError(f"unknown include {include!r}; valid: {', '.join(SOURCES)}")
    generate, _media, ext = EXPORTERS[format]
    dest = Path(dest)
    if dest.is_dir() or not dest.suffix:  # a folder, existing or to be made
        dest.mkdir(parents=True, exist_ok=True)
        with workspace.db.session() as session:
            project = session.get(Project, project_id)
            name = project.name if project is not None else str(project_id)
        dest = dest / f"{re.sub(r'[^A-Za-z0-9_-]+', '_', name)}-{format}-{include}.{ext}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with partial.open("wb") as out:
            for piece in generate(workspace, project_id, include):
                out.write(piece)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest
