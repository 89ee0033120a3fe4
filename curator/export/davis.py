"""DAVIS zip: DAVIS's folders, plus the Pascal VOC segmentation folders Datumaro and CVAT read.

Inside the zip:

- ``JPEGImages/<video>/<frame>.jpg``: the frames.
- ``Annotations/<video>/<frame>.png``: DAVIS's palette PNGs, index ``k`` = object ``k`` (0 background),
  in the DAVIS palette (object 1 is ``#800000``). Read them with PIL (``np.array(Image.open(p))``
  gives the indices); readers that expand palettes to colours see the palette colours instead.
- ``ImageSets/2017/default.txt``: the video folders, as DAVIS lists its sequences.
- ``SegmentationObject/<video>/<frame>.png``: the same object ids as an 8-bit greyscale PNG, which
  every reader (OpenCV, FiftyOne's ``ImageSegmentationDirectory``, Datumaro) reads as indices.
- ``SegmentationClass/<video>/<frame>.png``: greyscale, each pixel the label map index of its
  object's category (0 background).
- ``labelmap.txt``: ``name:r,g,b::`` per index, ``background`` first, then the project's categories
  in the order of ``palette.json``, with their colours (a missing, black or repeated colour is
  replaced by the VOC colour of its index). Index 1 is the project's first category.
- ``ImageSets/Segmentation/default.txt``: one ``<video>/<frame>`` per frame.

With the last four this is Pascal VOC instance segmentation as Datumaro and CVAT's "Segmentation
mask 1.1" import it: Datumaro detects it as ``voc`` and loads every object as a mask whose label is
its category, with the object id as the instance (``group``). ``frames.json`` maps each file to its
frame id and ``palette.json`` is the legend (categories; per object id its category and colours).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from curator.export.rows import FrameRow, LabelSchema, MaskRow, label_schema, open_session, walk
from curator.export.zipstream import Spool, ZipStream
from curator.workspace import Workspace

SUBSET = "default"


def voc_color(index: int) -> tuple[int, int, int]:
    """Pascal VOC's colour of label index ``index`` (the DAVIS palette is the same)."""
    r = g = b = 0
    c = index
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


def label_map(schema: LabelSchema) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, rgb)`` per label map index: ``background`` then the categories (see the module docstring)."""
    rows: list[tuple[str, tuple[int, int, int]]] = [("background", (0, 0, 0))]
    for index, category in enumerate(schema.categories, start=1):
        hex_color = str(category.get("color") or "")
        rgb = tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5)) if len(hex_color) == 7 else None
        if rgb is None or rgb == (0, 0, 0) or any(rgb == used for _, used in rows):
            rgb = voc_color(index)
        rows.append((str(category["name"]), (int(rgb[0]), int(rgb[1]), int(rgb[2]))))
    return rows


def labelmap_text(schema: LabelSchema) -> str:
    """``labelmap.txt`` as Datumaro and CVAT write it."""
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{r},{g},{b}::" for name, (r, g, b) in label_map(schema)]
    return "\n".join(lines) + "\n"


def _png(labels: np.ndarray, palette: list[int] | None) -> bytes:
    from PIL import Image

    image = Image.fromarray(labels, mode="P" if palette else "L")
    if palette:
        image.putpalette(palette)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _frame_pngs(f: FrameRow, found: list[MaskRow], class_of: np.ndarray) -> tuple[dict[str, bytes], list[int]]:
    """The three PNGs of one frame (DAVIS palette, object ids, class indices) and its object ids."""
    from curator.annotate.masks import DAVIS_PALETTE, decode_rle, masks_to_labels

    objects = {m.object_id: decode_rle(m.rle) for m in found}
    labels = masks_to_labels({k: v for k, v in objects.items() if 1 <= k <= 255}, (f.height, f.width))
    pngs = {
        "Annotations": _png(labels, DAVIS_PALETTE),
        "SegmentationObject": _png(labels, None),
        "SegmentationClass": _png(class_of[labels], None),
    }
    return pngs, sorted(objects)


def davis(workspace: Workspace, project_id: int, include: str, images: bool = True) -> Iterator[bytes]:
    """The DAVIS zip (see the module docstring); without ``images`` it leaves out ``JPEGImages/``."""
    out = ZipStream()
    session = open_session(workspace)
    index, items = Spool(), Spool()
    videos: list[str] = []
    seen: set[int] = set()
    try:
        schema = label_schema(session, project_id, include)
        position = {c["id"]: i for i, c in enumerate(schema.categories, start=1)}
        # objects that are never exported may lack an exported category (every exported one has one)
        class_of = np.array([0] + [position.get(schema.category_id(k), 0) for k in range(1, 256)], dtype=np.uint8)
        sep = ""
        for f, found in walk(session, project_id, include):
            pngs, objects = _frame_pngs(f, found, class_of)
            seen.update(objects)
            for folder, data in pngs.items():
                yield out.add(f"{folder}/{f.stem}.png", data)
            if images:
                yield out.add_file(f"JPEGImages/{f.file_name}", workspace.blobs.path(f.blob_path))
            if not videos or videos[-1] != f.video_name:
                videos.append(f.video_name)
            entry: dict[str, Any] = {"frame_id": f.id, "video_id": f.video_id, "frame_index": f.frame_index,
                                     "image": f"JPEGImages/{f.file_name}", "annotation": f"Annotations/{f.stem}.png",
                                     "objects": objects}
            index.write(sep + json.dumps(entry))
            items.write(f.stem + "\n")
            sep = ", "
        legend = {"categories": schema.categories, "objects": schema.legend(seen)}
    finally:
        session.close()
    yield out.add("labelmap.txt", labelmap_text(schema).encode())
    yield from out.stream(f"ImageSets/Segmentation/{SUBSET}.txt", items.chunks())
    yield out.add(f"ImageSets/2017/{SUBSET}.txt", "".join(v + "\n" for v in videos).encode())
    head = f'{{"project_id": {project_id}, "include": {json.dumps(include)}, "frames": ['.encode()
    yield from out.stream("frames.json", _around(head, index.chunks(), b"]}"))
    yield out.add("palette.json", json.dumps(legend).encode())
    yield from out.finish()


def _around(head: bytes, body: Iterator[bytes], tail: bytes) -> Iterator[bytes]:
    yield head
    yield from body
    yield tail
