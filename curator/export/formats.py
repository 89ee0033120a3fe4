"""The export formats by name, and :func:`write_export`, which writes one to a file.

========== ====================================================== ============ ========================
format     what                                                   images       JSON only (no images)
========== ====================================================== ============ ========================
coco       COCO instance segmentation (:mod:`.coco`)              asked        the default
davis      DAVIS + VOC segmentation folders zip (:mod:`.davis`)   the default  zip without JPEGImages/
ytvis      YouTube-VIS (:mod:`.ytvis`)                            asked        the default
datumaro   Datumaro 1.0, one track per object, CVAT-ready (:mod:`.dm`) the default  zip without images/
labelstudio Label Studio tasks with brush masks (:mod:`.labelstudio`) asked   the default
========== ====================================================== ============ ========================

With images every format is a zip in the tool's own layout; ``coco``, ``ytvis`` and ``labelstudio``
are a JSON file without them. Every export is produced piece by piece (see :mod:`.rows`), with the
label schema's category names and colours.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from curator.export.coco import coco
from curator.export.davis import davis
from curator.export.dm import datumaro
from curator.export.labelstudio import labelstudio
from curator.export.rows import SOURCES, project_name
from curator.export.ytvis import ytvis
from curator.workspace import Workspace

Writer = Callable[[Workspace, int, str, bool], Iterator[bytes]]


@dataclass(frozen=True)
class ExportFormat:
    """A format: its writer, whether images go in by default, and whether it can be a bare JSON file."""

    name: str
    writer: Writer
    images_default: bool
    json_alone: bool

    def images(self, images: bool | None) -> bool:
        """Whether an export asked for with ``images`` (``None``: the format's default) holds the images."""
        return self.images_default if images is None else bool(images)

    def media(self, images: bool | None = None) -> tuple[str, str]:
        """``(media type, file extension)`` of an export asked for with ``images``."""
        if self.json_alone and not self.images(images):
            return "application/json", "json"
        return "application/zip", "zip"

    def generate(self, workspace: Workspace, project_id: int, include: str, images: bool | None = None) -> Iterator[bytes]:
        """The export's bytes, piece by piece."""
        return self.writer(workspace, project_id, include, self.images(images))


EXPORTERS: dict[str, ExportFormat] = {
    "coco": ExportFormat("coco", coco, True, True),
    "davis": ExportFormat("davis", davis, True, False),
    "ytvis": ExportFormat("ytvis", ytvis, True, True),
    "datumaro": ExportFormat("datumaro", datumaro, True, False),
    "labelstudio": ExportFormat("labelstudio", labelstudio, False, True),
}


def write_export(workspace: Workspace, project_id: int, format: str, include: str, dest: Path,
                 images: bool | None = None) -> Path:
    """Write an export to ``dest``: a file, or a folder (existing, or a path without a suffix) that gets
    ``<project>-<format>-<include>.<ext>``.

    The bytes go to a temporary file beside the destination that is renamed once complete, so an
    interrupted export never leaves a truncated file under the final name.

    Args:
        workspace: The curator home.
        project_id: The project.
        format: A name of :data:`EXPORTERS`.
        include: ``human`` or ``all``.
        dest: A file or a folder.
        images: Put the images in (a zip in the tool's layout); ``None``: the format's default.

    Raises:
        ValueError: For an unknown format or include.
    """
    if format not in EXPORTERS:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(EXPORTERS)}")
    if include not in SOURCES:
        raise ValueError(f"unknown include {include!r}; valid: {', '.join(SOURCES)}")
    exporter = EXPORTERS[format]
    _media, ext = exporter.media(images)
    dest = Path(dest)
    if dest.is_dir() or not dest.suffix:  # a folder, existing or to be made
        dest.mkdir(parents=True, exist_ok=True)
        session = workspace.db.sessionmaker()
        try:
            name = project_name(session, project_id)
        finally:
            session.close()
        dest = dest / f"{re.sub(r'[^A-Za-z0-9_-]+', '_', name)}-{format}-{include}.{ext}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    try:
        with partial.open("wb") as out:
            for piece in exporter.generate(workspace, project_id, include, images):
                out.write(piece)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest
