"""Dataset exports: COCO instance segmentation, DAVIS PNG folders (zipped) and YouTube-VIS, streamed.

``EXPORTERS[format]`` gives ``(generator, media type, file extension)``; a generator yields the
export's bytes piece by piece. :func:`write_export` writes one to a file.
"""

from __future__ import annotations

from curator.export.formats import EXPORTERS, SOURCES, coco, davis, video_folder, write_export, ytvis

FORMATS = tuple(EXPORTERS)
INCLUDES = tuple(SOURCES)

__all__ = ["EXPORTERS", "FORMATS", "INCLUDES", "SOURCES", "coco", "davis", "video_folder", "write_export", "ytvis"]
