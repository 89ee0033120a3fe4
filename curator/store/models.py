"""SQLAlchemy 2 ORM models: projects, videos, shots, frames, embeddings, annotations, selections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every curator table."""


class Project(Base):
    """A curation project: a set of videos sharing an index, a queue and labels."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    videos: Mapped[list[Video]] = relationship(back_populates="project", cascade="all, delete-orphan")


class Video(Base):
    """One ingested video file. ``content_hash`` (SHA-256 of the file bytes) makes ingest idempotent."""

    __tablename__ = "videos"
    __table_args__ = (UniqueConstraint("project_id", "content_hash", name="uq_video_project_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    source_path: Mapped[str] = mapped_column(String(2000))
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(50))
    fps: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float] = mapped_column(Float)
    decoded_frames: Mapped[int] = mapped_column(Integer)
    sample_fps: Mapped[float] = mapped_column(Float)
    sample_stride: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[Project] = relationship(back_populates="videos")
    shots: Mapped[list[Shot]] = relationship(
        back_populates="video", cascade="all, delete-orphan", order_by="Shot.index"
    )
    frames: Mapped[list[Frame]] = relationship(
        back_populates="video", cascade="all, delete-orphan", order_by="Frame.frame_index"
    )


class Shot(Base):
    """A contiguous run of frames between two cuts, as found by PySceneDetect."""

    __tablename__ = "shots"
    __table_args__ = (UniqueConstraint("video_id", "index", name="uq_shot_video_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)  # exclusive, in decoded-frame numbers
    start_time: Mapped[float] = mapped_column(Float)
    end_time: Mapped[float] = mapped_column(Float)

    video: Mapped[Video] = relationship(back_populates="shots")


class Frame(Base):
    """A sampled candidate frame, stored as a JPEG blob.

    ``frame_index`` is the position of the frame among all decoded frames of the video;
    ``timestamp`` is its presentation time in seconds.
    """

    __tablename__ = "frames"
    __table_args__ = (UniqueConstraint("video_id", "frame_index", name="uq_frame_video_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    shot_id: Mapped[int | None] = mapped_column(ForeignKey("shots.id", ondelete="SET NULL"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    blob_path: Mapped[str] = mapped_column(String(1000))

    video: Mapped[Video] = relationship(back_populates="frames")
    shot: Mapped[Shot | None] = relationship()


class Embedding(Base):
    """The global (CLS) embedding of a frame under one backbone, float32 bytes, L2-normalised.

    Kept in the database so a project's FAISS index can always be rebuilt from it.
    """

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("frame_id", "backbone", name="uq_embedding_frame_backbone"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    backbone: Mapped[str] = mapped_column(String(100))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Annotation(Base):
    """A mask of one object on one frame, as COCO RLE, with where it came from.

    ``source`` is ``human``, ``propagated`` or ``predicted``; a frame counts as labelled when it has a
    human annotation.
    """

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    object_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    rle: Mapped[dict[str, Any]] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SelectionRun(Base):
    """One run of a selector over a project's pool, as stored, with its picks in ``items``.

    The selector's own in-memory result is :class:`curator.pool.Selection`.
    """

    __tablename__ = "selections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    strategy: Mapped[str] = mapped_column(String(100))
    budget: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(Integer)
    backbone: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    items: Mapped[list[SelectionItem]] = relationship(
        back_populates="selection", cascade="all, delete-orphan", order_by="SelectionItem.rank"
    )


class SelectionItem(Base):
    """A picked frame, in pick order, with the criterion that chose it and its utility."""

    __tablename__ = "selection_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    selection_id: Mapped[int] = mapped_column(ForeignKey("selections.id", ondelete="CASCADE"), index=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    utility: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    selection: Mapped[SelectionRun] = relationship(back_populates="items")
    frame: Mapped[Frame] = relationship()
