"""Dataset exports that open as they are in the tools they are for, streamed.

COCO (JSON, or a zip with ``images/``), DAVIS (zip, with Pascal VOC segmentation folders and a
label map for Datumaro and CVAT), YouTube-VIS (JSON, or a zip with ``JPEGImages/``), Datumaro 1.0
(zip, one track per object: the CVAT-ready export) and Label Studio (tasks with brush masks).
``EXPORTERS[format]`` is an :class:`ExportFormat`; :func:`write_export` writes one to a file.
"""

from __future__ import annotations

from curator.export.coco import coco
from curator.export.davis import davis
from curator.export.dm import datumaro
from curator.export.formats import EXPORTERS, ExportFormat, write_export
from curator.export.labelstudio import labelstudio
from curator.export.rows import SOURCES
from curator.export.ytvis import ytvis
from curator.store.repo import video_folder

FORMATS = tuple(EXPORTERS)
INCLUDES = tuple(SOURCES)

__all__ = ["EXPORTERS", "FORMATS", "INCLUDES", "SOURCES", "ExportFormat", "coco", "datumaro", "davis",
           "labelstudio", "video_folder", "write_export", "ytvis"]
