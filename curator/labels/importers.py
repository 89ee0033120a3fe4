"""Reading existing masks into a project: DAVIS-style PNG folders and COCO instance files.

Both readers only *find* masks and the frames they belong to; :meth:`curator.project.Project.import_masks`
validates and stores them. Frames are matched by video and frame index, so an export of this project
(COCO with ``video_id``/``frame_index``, or DAVIS ``Annotations/<video>/<index>.png``) imports back as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curator.labels.masks import InvalidMaskError

_INDEX = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class FoundMasks:
    """Masks of one frame as found in a source: where the frame is, and ``(object_id, rle)`` pairs.

    Attributes:
        video: Which video: its id, or a name to match against the video's file name or export folder.
        frame_index: Decoded-frame index in the video.
        masks: ``(object_id, rle)`` pairs (RLE as COCO writes it), or ``labels`` is set instead.
        labels: A label image (0 background, ``k`` object ``k``).
        origin: Where it came from, for messages.
    """

    video: int | str | None
    frame_index: int
    masks: list[tuple[int, Mapping[str, Any]]] | None
    labels: np.ndarray | None
    origin: str


def frame_index_of(stem: str) -> int:
    """The frame index a file stem ends with (``00042`` or ``frame_42`` give 42).

    Raises:
        InvalidMaskError: If the stem does not end with digits.
    """
    found = _INDEX.search(stem)
    if found is None:
        raise InvalidMaskError(f"cannot tell the frame index from the file name {stem!r} (expected e.g. 00042.png)")
    return int(found.group(1))


def davis_folder(root: Path) -> Iterator[FoundMasks]:
    """Masks of a DAVIS-style folder: ``<root>/<index>.png``, or ``<root>/<video>/<index>.png``.

    An ``Annotations`` folder inside ``root`` (a DAVIS export) is used when present. PNGs are
    palette images (index = object id) or DAVIS-2016 grey {0, 255} masks (one object).
    """
    from curator.annotate.masks import read_indexed_png

    if (root / "Annotations").is_dir():
        root = root / "Annotations"
    flat = sorted(root.glob("*.png"))
    nested = sorted(p for p in root.glob("*/*.png"))
    if not flat and not nested:
        raise InvalidMaskError(f"no PNG masks under {root} (expected <index>.png or <video>/<index>.png)")
    for path in flat:
        yield FoundMasks(None, frame_index_of(path.stem), None, read_indexed_png(path), str(path))
    for path in nested:
        yield FoundMasks(path.parent.name, frame_index_of(path.stem), None, read_indexed_png(path), str(path))


def _coco_frame(image: Mapping[str, Any]) -> tuple[int | str | None, int]:
    # the file name's folder names the video (an export's ``<id>_<stem>``, or the file's stem), which
    # also matches in another project holding the same footage; ``video_id`` only as a last resort
    name = Path(str(image.get("file_name", "")))
    video: int | str | None = name.parent.name or None
    if video is None and "video_id" in image:
        video = int(image["video_id"])
    if "frame_index" in image:
        return video, int(image["frame_index"])
    return video, frame_index_of(name.stem)


def _coco_rle(ann: Mapping[str, Any], height: int, width: int) -> Mapping[str, Any]:
    seg = ann.get("segmentation")
    if isinstance(seg, Mapping):
        return seg
    if isinstance(seg, list) and seg:
        from pycocotools import mask as mask_utils

        rles = mask_utils.frPyObjects(seg, height, width)
        merged = mask_utils.merge(rles)
        return {"size": [int(v) for v in merged["size"]], "counts": merged["counts"].decode("ascii")}
    raise InvalidMaskError(f"annotation {ann.get('id')} has no RLE or polygon segmentation")


def coco_file(path: Path) -> Iterator[FoundMasks]:
    """Masks of a COCO instance file: RLE or polygon segmentations, grouped per image.

    An image is matched to a frame by the video its ``file_name`` folder names (``<video>/<index>.jpg``;
    curator's exports name it ``<id>_<file stem>``) and by ``frame_index`` when given, else the
    index the file name ends with. The object id is the annotation's
    ``object_id`` (or ``track_id``), else its order within the image.
    """
    try:
        data = json.loads(path.read_text())
        images = {int(img["id"]): img for img in data["images"]}
        annotations = list(data.get("annotations", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidMaskError(f"{path} is not a COCO instance file ({exc})") from None
    by_image: dict[int, list[Mapping[str, Any]]] = {i: [] for i in images}
    for ann in annotations:
        if int(ann.get("image_id", -1)) not in by_image:
            raise InvalidMaskError(f"annotation {ann.get('id')} names unknown image {ann.get('image_id')}")
        by_image[int(ann["image_id"])].append(ann)
    for image_id, anns in by_image.items():
        image = images[image_id]
        video, index = _coco_frame(image)
        height, width = int(image.get("height", 0)), int(image.get("width", 0))
        masks = [
            (int(ann.get("object_id") or ann.get("track_id") or n), _coco_rle(ann, height, width))
            for n, ann in enumerate(anns, start=1)
        ]
        yield FoundMasks(video, index, masks, None, f"{path}#image {image_id}")


def find_masks(source: str | Path) -> Iterator[FoundMasks]:
    """Masks of a DAVIS folder or a COCO ``.json`` file.

    Raises:
        InvalidMaskError: If the source is neither, or cannot be read.
    """
    path = Path(source)
    if path.is_dir():
        return davis_folder(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return coco_file(path)
    raise InvalidMaskError(f"{path} is neither a folder of PNG masks nor a COCO .json file")
