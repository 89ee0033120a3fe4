"""Repository functions: the SQL the engine, CLI and API share (routes never hold SQL)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from curator.store.models import Annotation, Embedding, Frame, Project, Shot, Video


class NotFoundError(LookupError):
    """A row asked for by id or name does not exist."""


def get_or_create_project(session: Session, name: str) -> Project:
    """Return the project called ``name``, creating it if needed."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(name=name)
        session.add(project)
        session.flush()
    return project


def get_project(session: Session, name: str) -> Project:
    """Return the project called ``name``.

    Raises:
        NotFoundError: If there is none.
    """
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        names = session.scalars(select(Project.name).order_by(Project.name)).all()
        raise NotFoundError(f"no project named {name!r}; existing projects: {', '.join(names) or 'none'}")
    return project


def find_video_by_hash(session: Session, project_id: int, content_hash: str) -> Video | None:
    """The video of ``project_id`` whose file hash is ``content_hash``, if ingested already."""
    return session.scalar(
        select(Video).where(Video.project_id == project_id, Video.content_hash == content_hash)
    )


def project_frames(session: Session, project_id: int) -> list[Frame]:
    """Every frame of a project, ordered by video then time."""
    stmt = (
        select(Frame)
        .join(Video, Frame.video_id == Video.id)
        .where(Video.project_id == project_id)
        .order_by(Frame.video_id, Frame.frame_index)
    )
    return list(session.scalars(stmt))


def frames_missing_embedding(session: Session, project_id: int, backbone: str) -> list[Frame]:
    """Frames of a project with no embedding under ``backbone`` yet."""
    embedded = select(Embedding.frame_id).where(Embedding.backbone == backbone)
    stmt = (
        select(Frame)
        .join(Video, Frame.video_id == Video.id)
        .where(Video.project_id == project_id, Frame.id.not_in(embedded))
        .order_by(Frame.video_id, Frame.frame_index)
    )
    return list(session.scalars(stmt))


def put_embeddings(session: Session, frame_ids: np.ndarray, vectors: np.ndarray, backbone: str) -> None:
    """Store one float32 vector per frame under ``backbone``."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    for frame_id, vector in zip(frame_ids.tolist(), vectors, strict=True):
        session.add(
            Embedding(frame_id=int(frame_id), backbone=backbone, dim=vector.shape[0], vector=vector.tobytes())
        )


def get_embeddings(session: Session, project_id: int, backbone: str) -> tuple[np.ndarray, np.ndarray]:
    """All embeddings of a project under ``backbone``: ``(frame_ids int64 (n,), vectors float32 (n, d))``."""
    stmt = (
        select(Embedding.frame_id, Embedding.vector)
        .join(Frame, Embedding.frame_id == Frame.id)
        .join(Video, Frame.video_id == Video.id)
        .where(Video.project_id == project_id, Embedding.backbone == backbone)
        .order_by(Frame.video_id, Frame.frame_index)
    )
    rows = session.execute(stmt).all()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
    return ids, vectors


def project_backbones(session: Session, project_id: int) -> list[str]:
    """Backbones that have embeddings in a project."""
    stmt = (
        select(Embedding.backbone)
        .join(Frame, Embedding.frame_id == Frame.id)
        .join(Video, Frame.video_id == Video.id)
        .where(Video.project_id == project_id)
        .distinct()
    )
    return sorted(session.scalars(stmt))


@dataclass(frozen=True)
class PoolRows:
    """Per-frame metadata of a project's pool, aligned with ``frame_ids``."""

    frame_ids: np.ndarray
    video_ids: np.ndarray
    timestamps: np.ndarray
    shot_ids: np.ndarray
    labeled: np.ndarray


def pool_rows(session: Session, frame_ids: np.ndarray) -> PoolRows:
    """Metadata for ``frame_ids`` in the given order; ``labeled`` means a human annotation exists."""
    ids = [int(i) for i in frame_ids.tolist()]
    rows = {
        r.id: r
        for r in session.execute(
            select(Frame.id, Frame.video_id, Frame.timestamp, Frame.shot_id).where(Frame.id.in_(ids))
        )
    }
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFoundError(f"unknown frame ids {missing[:10]}")
    human = set(
        session.scalars(
            select(Annotation.frame_id).where(Annotation.frame_id.in_(ids), Annotation.source == "human")
        )
    )
    return PoolRows(
        frame_ids=np.asarray(ids, dtype=np.int64),
        video_ids=np.array([rows[i].video_id for i in ids], dtype=np.int64),
        timestamps=np.array([rows[i].timestamp for i in ids], dtype=np.float64),
        shot_ids=np.array(
            [rows[i].shot_id if rows[i].shot_id is not None else -1 for i in ids], dtype=np.int64
        ),
        labeled=np.array([i in human for i in ids], dtype=bool),
    )


def video_shots(session: Session, video_id: int) -> list[Shot]:
    """Shots of a video in order."""
    return list(session.scalars(select(Shot).where(Shot.video_id == video_id).order_by(Shot.index)))
