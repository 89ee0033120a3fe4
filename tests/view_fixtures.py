"""A stored project for the project-view tests: two videos with shots, pictures, embeddings in two groups
per video (their FAISS index built), human and propagated masks, a selection with queued picks, and
two rounds (one without proxy metrics: too few human frames)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from sqlalchemy.orm import Session

from curator.annotate.masks import encode_rle
from curator.index import sync_project_index
from curator.project import Project as Facade
from curator.store import repo
from curator.store.models import Annotation, Frame, Project, Round, Shot, Video
from curator.workspace import Workspace

HEIGHT, WIDTH = 120, 160
STEP = 5  # decoded frames between stored frames (a stride of 5 at 25 fps)
DIM = 16


def scene(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic RGB frame with a disc moving right and a fixed box; their true masks."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0] = 30 + (xx * 50 // WIDTH)
    image[..., 1] = 50 + (yy * 60 // HEIGHT)
    image[..., 2] = 80
    cx, cy = 30 + 5 * index, 64
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= 16**2
    box = (xx >= 104) & (xx < 144) & (yy >= 16) & (yy < 46)
    image[disc] = (235, 210, 120)
    image[box] = (200, 200, 210)
    return image, disc, box


def vectors(video: int, n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors of one video: its first half in one tight group, its second half in another."""
    rng = np.random.default_rng(seed + video)
    x = np.zeros((n, DIM), np.float32)
    half = n // 2
    for i in range(n):
        group = 2 * video + (0 if i < half else 1)
        x[i, group] = 1.0
        x[i, 8 + group] = 0.05 * i
    x += 0.01 * rng.normal(size=x.shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@dataclass
class ViewProject:
    """Ids of the seeded project."""

    project_id: int
    videos: list[int]
    frames: dict[int, list[int]]  # video id -> frame ids in time order
    human_frame: int  # the frame of video 0 with human masks (a disc, object 1; a box, object 2)
    human_index: int  # its position in the video
    propagated_frame: int  # a frame of video 0 with propagated masks at confidence 0.4
    picks: list[int] = field(default_factory=list)


def _add_video(session: Session, project_id: int, v: int, n: int, name: str, workspace: Workspace) -> tuple[int, list[int]]:
    video = Video(
        project_id=project_id, filename=f"clip{v}.mp4", source_path="", content_hash=f"{name}-{v}", size_bytes=0,
        codec="none", fps=25.0, width=WIDTH, height=HEIGHT, duration=n * STEP / 25, decoded_frames=n * STEP,
        sample_fps=0.0, sample_stride=STEP,
    )
    session.add(video)
    session.flush()
    cut = n // 2 * STEP if v == 0 else n * STEP  # video 0 has two shots
    spans = [(0, cut), (cut, n * STEP)] if cut < n * STEP else [(0, n * STEP)]
    shots = [Shot(video_id=video.id, index=i, start_frame=a, end_frame=b, start_time=a / 25, end_time=b / 25)
             for i, (a, b) in enumerate(spans)]
    session.add_all(shots)
    session.flush()
    frames = []
    for i in range(n):
        image, _, _ = scene(i)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 95])
        assert ok
        blob = f"synthetic/{name}-{v}-{i}.jpg"
        workspace.blobs.write_bytes_atomic(blob, buf.tobytes())
        shot = shots[0] if i * STEP < spans[0][1] else shots[-1]
        frames.append(Frame(video_id=video.id, shot_id=shot.id, frame_index=i * STEP, timestamp=i * STEP / 25,
                            width=WIDTH, height=HEIGHT, content_hash=f"{name}-{v}-{i}", blob_path=blob))
    session.add_all(frames)
    session.flush()
    return video.id, [f.id for f in frames]


def seed_view_project(workspace: Workspace, name: str = "view", per_video: int = 12, *, rounds: bool = True) -> ViewProject:
    """Store the project described in the module docstring; returns its ids."""
    with workspace.db.session() as session:
        project = Project(name=name)
        session.add(project)
        session.flush()
        pid = project.id
        made = [_add_video(session, pid, v, per_video, name, workspace) for v in range(2)]
        for v, (_, ids) in enumerate(made):
            repo.put_embeddings(session, np.asarray(ids, np.int64), vectors(v, len(ids)), "classic")
        first = made[0][1]
        human_index = 3
        _, disc, box = scene(human_index)
        session.add_all([
            Annotation(frame_id=first[human_index], object_id=1, source="human", rle=encode_rle(disc), confidence=1.0),
            Annotation(frame_id=first[human_index], object_id=2, source="human", rle=encode_rle(box), confidence=1.0),
        ])
        for i, frame_id in enumerate(first):
            if i == human_index:
                continue
            _, disc, box = scene(i)
            confidence = 0.4 if i == human_index + 4 else max(0.5, 1.0 - 0.05 * abs(i - human_index))
            session.add_all([
                Annotation(frame_id=frame_id, object_id=1, source="propagated", rle=encode_rle(disc), confidence=confidence),
                Annotation(frame_id=frame_id, object_id=2, source="propagated", rle=encode_rle(box), confidence=0.95),
            ])
    sync_project_index(workspace, pid, "classic")
    seeded = ViewProject(pid, [m[0] for m in made], {m[0]: m[1] for m in made}, first[human_index], human_index,
                         first[human_index + 4])
    selection = Facade.by_id(workspace, pid).select(4, "uniform", preannotate=False)
    seeded.picks = [p.frame_id for p in selection.picks]
    if rounds:
        add_rounds(workspace, pid, selection.selection_id)
    return seeded


def add_rounds(workspace: Workspace, project_id: int, selection_id: int) -> None:
    """Two finished rounds: the first with 3 human frames (no holdout, no proxy metrics), the second
    with 20 (2 held out) and its next batch the given selection."""
    now = datetime.now(UTC)
    with workspace.db.session() as session:
        session.add_all([
            Round(project_id=project_id, number=1, state="succeeded", params={"strategy": "curator", "budget": 4},
                  metrics={"proxy_J": None, "proxy_F": None, "proxy_JF": None, "holdout_frames": 0,
                           "train_human": 3, "train_frames": 9, "train_propagated": 6},
                  timings={}, created_at=now, finished_at=now),
            Round(project_id=project_id, number=2, state="succeeded", params={"strategy": "curator", "budget": 4},
                  metrics={"proxy_J": 0.6, "proxy_F": 0.7, "proxy_JF": 0.65, "holdout_frames": 2,
                           "train_human": 18, "train_frames": 30, "train_propagated": 12},
                  timings={}, selection_id=selection_id, created_at=now, finished_at=now),
        ])


def write_clip(path: Path, frames: int = 40, rate: int = 10, shade: int = 0) -> Path:
    """An H.264 clip of ``frames`` frames at ``rate`` fps (64x48), each a different grey."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("h264", rate=Fraction(rate))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), (shade + i * 6) % 256, dtype=np.uint8)
            image[:, : (i % 64)] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
