"""Reading existing masks into a project: DAVIS-style PNG folders, COCO instance files and Label
Studio JSON exports.

The readers only *find* masks and the frames they belong to; :meth:`curator.project.Project.import_masks`
validates and stores them. Frames are matched by video and frame index, so an export of this project
(COCO with ``video_id``/``frame_index``, DAVIS ``Annotations/<video>/<index>.png``, or Label Studio
tasks whose ``data`` carries ``video`` and ``frame_index``) imports back as is.
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
    except (OSError, ValueError) as exc:
        raise InvalidMaskError(f"{path} is not a COCO instance file ({exc})") from None
    return _coco_data(data, path)


def _coco_data(data: Any, path: Path) -> Iterator[FoundMasks]:
    try:
        images = {int(img["id"]): img for img in data["images"]}
        annotations = list(data.get("annotations", []))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidMaskError(f"{path} is not a COCO instance file ({exc})") from None
    by_image: dict[int, list[Mapping[str, Any]]] = {i: [] for i in images}
    for ann in annotations:
        if int(ann.get("image_id", -1)) not in by_image:
            raise InvalidMaskError(f"annotation {ann.get('id')} names unknown image {ann.get('image_id')}")
        by_image[int(ann["image_id"])].append(ann)
    return _coco_frames(images, by_image, path)


def _coco_frames(images: dict[int, Any], by_image: dict[int, list[Mapping[str, Any]]], path: Path) -> Iterator[FoundMasks]:
    for image_id, anns in by_image.items():
        image = images[image_id]
        video, index = _coco_frame(image)
        height, width = int(image.get("height", 0)), int(image.get("width", 0))
        masks = [
            (int(ann.get("object_id") or ann.get("track_id") or n), _coco_rle(ann, height, width))
            for n, ann in enumerate(anns, start=1)
        ]
        yield FoundMasks(video, index, masks, None, f"{path}#image {image_id}")


_LS_REGION = re.compile(r"^object-(\d+)$")


def _ls_frame(data: Mapping[str, Any]) -> tuple[int | str | None, int]:
    """The video and frame index of a Label Studio task: curator's ``video``/``frame_index`` in its
    ``data``, else the image URL's ``<video>/<index>.jpg``."""
    image = str(data.get("image", ""))
    name = Path(image.split("?d=", 1)[-1].split("?", 1)[0])
    video: int | str | None = data.get("video") or data.get("video_id") or name.parent.name or None
    if "frame_index" in data:
        return video, int(data["frame_index"])
    return video, frame_index_of(name.stem)


def _ls_latest(task: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The task's newest annotation that was not cancelled (predictions are not labels)."""
    done = [a for a in task.get("annotations") or [] if isinstance(a, Mapping) and not a.get("was_cancelled")]
    if not done:
        return None
    return max(enumerate(done), key=lambda p: (str(p[1].get("updated_at") or p[1].get("created_at") or ""), p[0]))[1]


def _ls_masks(results: list[Any], origin: str) -> list[tuple[int, Mapping[str, Any]]]:
    """``(object_id, rle)`` of an annotation's brush results; regions not named ``object-<id>`` get the
    next free object ids, and two regions of one object are merged."""
    from curator.annotate.masks import encode_rle
    from curator.export import brush

    found: dict[int, np.ndarray] = {}
    unnamed: list[np.ndarray] = []
    for result in results:
        value = result.get("value") or {}
        if result.get("type") != "brushlabels" or value.get("format", "rle") != "rle" or "rle" not in value:
            continue
        try:
            mask = brush.decode(value["rle"], int(result["original_height"]), int(result["original_width"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMaskError(f"{origin}: region {result.get('id')} has no readable brush mask ({exc})") from None
        named = _LS_REGION.match(str(result.get("id", "")))
        if named is None:
            unnamed.append(mask)
            continue
        object_id = int(named.group(1))
        found[object_id] = found[object_id] | mask if object_id in found else mask
    for mask in unnamed:
        found[next(k for k in range(1, 256) if k not in found)] = mask
    return [(k, encode_rle(found[k])) for k in sorted(found)]


def labelstudio_tasks(tasks: list[Any], path: Path) -> Iterator[FoundMasks]:
    """Masks of a Label Studio JSON export: per task, its newest annotation's brush masks.

    A task is matched to a frame by the ``video`` and ``frame_index`` of its ``data`` (as curator's
    Label Studio export writes them), else by the image URL's ``<video>/<index>.jpg``. A region whose
    id is ``object-<k>`` is object ``k``; other regions (drawn in Label Studio) get the frame's next
    free object ids. Tasks without an annotation are skipped; an annotation without regions labels its
    frame as holding no object.
    """
    for n, task in enumerate(tasks):
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            raise InvalidMaskError(f"{path}: item {n} is not a Label Studio task (no data)")
        annotation = _ls_latest(task)
        if annotation is None:
            continue
        origin = f"{path}#task {task.get('id', n)}"
        video, index = _ls_frame(task["data"])
        yield FoundMasks(video, index, _ls_masks(list(annotation.get("result") or []), origin), None, origin)


def find_masks(source: str | Path) -> Iterator[FoundMasks]:
    """Masks of a DAVIS folder, a COCO ``.json`` file or a Label Studio JSON export (a list of tasks).

    Raises:
        InvalidMaskError: If the source is none of these, or cannot be read.
    """
    path = Path(source)
    if path.is_dir():
        return davis_folder(path)
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidMaskError(f"{path} is not a COCO file or Label Studio export ({exc})") from None
        if isinstance(data, list):
            return labelstudio_tasks(data, path)
        return _coco_data(data, path)
    raise InvalidMaskError(f"{path} is neither a folder of PNG masks nor a COCO or Label Studio .json file")
