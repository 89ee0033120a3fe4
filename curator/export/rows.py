"""What every export reads: the label schema, the labelled frames and their masks, streamed.

Only labelled frames go out: frames with masks of the requested sources, or whose task was submitted
with no object (the Label Studio export adds the queue's unfinished tasks). Rows are read in chunks
(``yield_per``), so an export never holds every frame or mask of a project in memory.

``include="human"`` exports human masks only; ``include="all"`` takes, per frame, the masks of the
best source present (human over propagated over predicted).

Categories: a project without categories exports one category, ``object`` (id 1), for every mask.
A project with categories (:class:`curator.store.models.Category`) exports them under their ids,
and each mask gets its object's category (:class:`curator.store.models.ObjectCategory`); objects
without one get the project's category named ``object`` if it has one, else an extra category
``object`` whose id is one above the project's highest category id (not 0: COCO readers such as
Datumaro take category 0 for "no label"), listed only when such an object is exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, union
from sqlalchemy.orm import Session

from curator.store.models import Annotation, Category, Frame, ObjectCategory, Project, Task, Video
from curator.store.repo import video_folder
from curator.workspace import Workspace

SOURCES = {"human": ("human",), "all": ("human", "propagated", "predicted")}
CATEGORY: dict[str, Any] = {"id": 1, "name": "object", "supercategory": "object"}
#: The category of objects without one, in a project that has categories but none named ``object``
#: (its id is set per export, above the project's category ids).
UNASSIGNED: dict[str, Any] = {"name": "object", "supercategory": "object"}
#: Task states of frames still to label (the Label Studio export sends them with their pre-annotation).
QUEUED = ("open", "leased")
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

    def category(self, object_id: int) -> dict[str, Any]:
        """The category (``id``, ``name``, ``color`` when the project gave one) of ``object_id``."""
        wanted = self.category_id(object_id)
        return next((c for c in self.categories if c["id"] == wanted), CATEGORY)

    def legend(self, object_ids: Iterable[int]) -> dict[str, dict[str, Any]]:
        """Per object id (as a string): ``category_id``, ``category`` (name), ``color`` (the category's
        ``#rrggbb``, ``None`` for the default ``object``) and ``palette_color`` (its DAVIS PNG index colour)."""
        from curator.annotate.masks import DAVIS_PALETTE

        out = {}
        for object_id in sorted(object_ids):
            category = self.category(object_id)
            rgb = DAVIS_PALETTE[3 * object_id : 3 * object_id + 3] if 0 <= object_id < 256 else [0, 0, 0]
            out[str(object_id)] = {
                "category_id": category["id"], "category": category["name"], "color": category.get("color"),
                "palette_color": "#{:02x}{:02x}{:02x}".format(*rgb),
            }
        return out


def label_schema(session: Session, project_id: int, include: str) -> LabelSchema:
    """The project's categories as exported (see the module docstring)."""
    rows = list(session.scalars(select(Category).where(Category.project_id == project_id).order_by(Category.id)))
    if not rows:
        return LabelSchema([dict(CATEGORY)], {}, CATEGORY["id"])
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
    unassigned = max(c.id for c in rows) + 1
    if any(int(o) not in of_object for o in exported):
        categories.append({"id": unassigned, **UNASSIGNED})
    return LabelSchema(categories, of_object, unassigned)


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
    def stem(self) -> str:
        """The frame's path inside an export without extension: ``<video folder>/<frame index>``."""
        return f"{self.video_name}/{self.frame_index:05d}"

    @property
    def file_name(self) -> str:
        """Path of the image inside an export: ``<video folder>/<frame index>.jpg``."""
        return f"{self.stem}.jpg"


def frames(session: Session, project_id: int, include: str, *, queued: bool = False) -> Iterator[FrameRow]:
    """The labelled frames in (video, frame index) order; with ``queued`` also the frames of unfinished tasks."""
    parts = [
        select(Annotation.frame_id)
        .join(Frame, Frame.id == Annotation.frame_id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.project_id == project_id, Annotation.source.in_(SOURCES[include])),
        select(Task.frame_id).where(Task.project_id == project_id, Task.state == "done"),
    ]
    if queued:
        parts.append(select(Task.frame_id).where(Task.project_id == project_id, Task.state.in_(QUEUED)))
    labelled = union(*parts).subquery()
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


def masks(session: Session, project_id: int, include: str) -> Iterator[MaskRow]:
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


def walk(session: Session, project_id: int, include: str, *, queued: bool = False) -> Iterator[tuple[FrameRow, list[MaskRow]]]:
    """Each exported frame with its masks, in (video, frame index) order: two streamed queries in step."""
    found = masks(session, project_id, include)
    pending = next(found, None)
    for frame in frames(session, project_id, include, queued=queued):
        mine: list[MaskRow] = []
        while pending is not None and pending.frame_id == frame.id:
            mine.append(pending)
            pending = next(found, None)
        yield frame, mine


def area_bbox(rle: dict[str, Any]) -> tuple[int, list[float]]:
    """A COCO RLE's pixel count and ``[x, y, w, h]`` box, by pycocotools."""
    from pycocotools import mask as mask_utils

    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return int(mask_utils.area(coded)), [float(v) for v in mask_utils.toBbox(coded)]


def open_session(workspace: Workspace) -> Session:
    """A session of the workspace's database for one export (closed by the export when done)."""
    return workspace.db.sessionmaker()


def project_name(session: Session, project_id: int) -> str:
    """The project's name (its id as text if it is gone)."""
    project = session.get(Project, project_id)
    return project.name if project is not None else str(project_id)


def zip_with_images(
    workspace: Workspace, project_id: int, include: str, image_folder: str, document: str, json_chunks: Iterable[bytes]
) -> Iterator[bytes]:
    """A zip of the exported frames' JPEGs under ``image_folder/`` and then one JSON ``document``.

    The frames' files are stored as they are (JPEG does not compress further) and the JSON is
    deflated as it streams, so neither is held in memory whole.
    """
    from curator.export.zipstream import ZipStream

    out = ZipStream()
    session = open_session(workspace)
    try:
        for f in frames(session, project_id, include):
            yield out.add_file(f"{image_folder}/{f.file_name}", workspace.blobs.path(f.blob_path))
    finally:
        session.close()
    yield from out.stream(document, json_chunks)
    yield from out.finish()
