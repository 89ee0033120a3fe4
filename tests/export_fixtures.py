"""A small project for the export tests: two videos of distinct synthetic frames, a label schema
(``person`` red, ``car`` blue; object 3 without a category), human masks, propagated masks with
confidences, a queued task with a pre-annotation, a done task with no object, and the masks each
export must carry, pixel for pixel."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import curator
from curator.annotate.masks import encode_rle
from curator.store import repo
from curator.store.models import Annotation, Frame, Video

SIZE = (48, 64)  # height, width
FRAMES = 6
VIDEOS = 2
HUMAN = (0, 3)  # frame indices with human masks, in each video
PROPAGATED = (1, 2)  # with propagated masks
QUEUED = 4  # an open task whose frame has propagated masks (its pre-annotation)
EMPTY = 5  # a done task without any object
NAMES = {1: "person", 2: "car", 3: "object"}
COLORS = {"person": "#ff0000", "car": "#0000ff"}


@dataclass
class Built:
    """The project, and per frame ``(video folder, frame index)`` its expected masks by source."""

    home: Any
    project: Any
    frame_ids: dict[tuple[str, int], int] = field(default_factory=dict)
    masks: dict[tuple[str, int], dict[int, np.ndarray]] = field(default_factory=dict)
    sources: dict[tuple[str, int], str] = field(default_factory=dict)
    confidence: dict[tuple[str, int], float] = field(default_factory=dict)

    def expected(self, include: str, queued: bool = False) -> dict[tuple[str, int], dict[int, np.ndarray]]:
        """The frames an export with ``include`` carries and their masks (``queued``: Label Studio's)."""
        out: dict[tuple[str, int], dict[int, np.ndarray]] = {}
        for key, masks in self.masks.items():
            source = self.sources.get(key)
            step = key[1] // 3
            if source == "human" or (include == "all" and source is not None):
                out[key] = masks
            elif step == EMPTY or (queued and step == QUEUED):
                out[key] = {}
        return out


def object_masks(rng: np.random.Generator, height: int, width: int, objects: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Disjoint, irregular masks: object ``k`` lives in its own band of columns (object 1 touches the
    left border, the last the right one)."""
    band = width // len(objects)
    out = {}
    for n, k in enumerate(objects):
        mask = np.zeros((height, width), bool)
        lo, hi = n * band, (n + 1) * band if n < len(objects) - 1 else width
        top = int(rng.integers(0, height // 3))
        mask[top : top + height // 2, lo:hi] = rng.random((height // 2, hi - lo)) < 0.8
        mask[top + 2 : top + 6, lo:hi] = True
        out[k] = mask
    return out


def build(tmp_path: Path) -> Built:
    """The project described in the module docstring, in a home under ``tmp_path``."""
    home = curator.open(tmp_path / "home", backbone="classic", device="cpu", notice=lambda _m: None)
    project = home.project("exports")
    built = Built(home, project)
    rng = np.random.default_rng(7)
    height, width = SIZE
    with home.workspace.db.session() as session:
        for v in range(VIDEOS):
            video = Video(project_id=project.id, filename=f"clip {v}.mp4", source_path="", content_hash=f"x-{v}",
                          size_bytes=0, codec="none", fps=25.0, width=width, height=height, duration=1.0,
                          decoded_frames=FRAMES * 3, sample_fps=0.0, sample_stride=3)
            session.add(video)
            session.flush()
            for i in range(FRAMES):
                index = 3 * i
                pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
                blob = f"synthetic/{v}-{index}.jpg"
                home.workspace.blobs.write_bytes_atomic(blob, cv2.imencode(".jpg", pixels)[1].tobytes())
                frame = Frame(video_id=video.id, shot_id=None, frame_index=index, timestamp=index / 25,
                              width=width, height=height, content_hash=f"x-{v}-{index}", blob_path=blob)
                session.add(frame)
                session.flush()
                key = (repo.video_folder(video.id, video.filename), index)
                built.frame_ids[key] = frame.id
    person = project.add_category("person", COLORS["person"])
    car = project.add_category("car", COLORS["car"])
    project.set_object_category(1, person["id"])
    project.set_object_category(2, car["id"])
    _label(built, rng)
    return built


def _label(built: Built, rng: np.random.Generator) -> None:
    height, width = SIZE
    project = built.project
    with project.workspace.db.session() as session:
        queued = [(fid, "test") for key, fid in built.frame_ids.items() if key[1] // 3 in (QUEUED, EMPTY)]
        repo.create_tasks(session, project.id, None, queued)
    for key, frame_id in built.frame_ids.items():
        step = key[1] // 3
        built.masks[key] = {}
        if step in HUMAN:
            masks = object_masks(rng, height, width, (1, 2, 3) if step == 0 else (1, 2))
            project.label(frame_id, masks)
            built.masks[key], built.sources[key] = masks, "human"
        elif step in (*PROPAGATED, QUEUED):
            masks = object_masks(rng, height, width, (1, 2))
            confidence = round(float(rng.uniform(0.3, 0.9)), 3)
            with project.workspace.db.session() as session:
                session.add_all(Annotation(frame_id=frame_id, object_id=k, source="propagated", rle=encode_rle(m),
                                           confidence=confidence) for k, m in masks.items())
            built.masks[key], built.sources[key], built.confidence[key] = masks, "propagated", confidence
        elif step == EMPTY:
            project.label(frame_id, [])  # labelled: no object on it (its task is done)


def unzip(path: Path, dest: Path) -> Path:
    """Extract an export as a user would (nothing else is written into it)."""
    with zipfile.ZipFile(path) as archive:
        archive.extractall(dest)
    return dest
