"""Every table, by what it holds: footage (projects, videos, shots, frames, embeddings), labels
(annotations, categories and the objects' categories, selections, the labelling queue's tasks), work
(jobs, the server lease, API keys, browser sessions), and the retrain loop (rounds, per-frame
scores). One ``Base``: ``Base.metadata.create_all`` makes them all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
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

    ``source`` is ``human``, ``propagated``, ``predicted``, ``rejected`` (human masks a reviewer sent
    back: shown as the task's pre-annotation, never exported, propagated or trained on) or ``model``
    (SAM 2's automatic masks on a queued frame nothing else pre-annotates; shown only); a frame
    counts as labelled when it has a human annotation.
    """

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    object_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    rle: Mapped[dict[str, Any]] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Category(Base):
    """A label category of a project (``person``, ``car``...) with a display colour ``#rrggbb``.

    Objects get their category through :class:`ObjectCategory`, one row per object id of the project.
    """

    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_category_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str] = mapped_column(String(7))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ObjectCategory(Base):
    """The category of one object id of a project: an object keeps its id, and so its category,
    across the frames of a video. Annotations carry no category; exports join on this table."""

    __tablename__ = "objects"
    __table_args__ = (UniqueConstraint("project_id", "object_id", name="uq_object_project_object"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    object_id: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="CASCADE"))


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


# --- work and the labelling queue ----------------------------------------------------------------

#: Job states. ``interrupted`` is a job that was running when the server stopped; it can be retried.
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
#: States a job never leaves on its own.
JOB_FINAL_STATES = ("succeeded", "failed", "cancelled", "interrupted")
#: Roles of API keys, weakest first; a role may do everything the roles before it may.
ROLES = ("viewer", "annotator", "admin")
#: Task states of the labelling queue (a ``leased`` task whose lease expired counts as ``open``).
TASK_STATES = ("open", "leased", "done")


class Job(Base):
    """A unit of long work (ingest, embed, select, propagate) run by the job runner.

    ``progress_done``/``progress_total`` and ``stage`` are updated while it runs; ``result`` holds
    the handler's JSON answer and ``error_code``/``error`` why it failed. A running job has an
    ``owner`` (the runner id ``host:pid:token`` of the runner executing it) and a ``heartbeat_at``
    (Unix seconds) that runner refreshes while it runs (see :mod:`curator.jobs.owner`).
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True, nullable=True
    )
    kind: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    stage: Mapped[str | None] = mapped_column(String(50), nullable=True)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ServerLease(Base):
    """The one server (job runner) that holds a database: a single row, ``id`` 1, while one runs.

    ``owner`` is the holder's runner id, ``host`` and ``pid`` say where it runs, and ``heartbeat_at``
    (Unix seconds) is refreshed while it runs; a holder whose heartbeat is stale, or whose pid is
    gone from this host, no longer holds the database (see :mod:`curator.jobs.owner`).
    """

    __tablename__ = "server_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    heartbeat_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the secret (keys are 256-bit random, so no salt is needed).

    ``project_id`` ``None`` means the role holds on every project (a global key).
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True, nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BrowserSession(Base):
    """A signed-in browser: the SHA-256 of a random session token (the cookie), the key it acts for,
    the CSRF token its state-changing requests must echo, and when it ends (Unix seconds).

    A session lives only as long as its key: revoking the key ends every session made with it.
    """

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class Task(Base):
    """A frame waiting for (or having received) a human label: one row per frame of a project.

    A lease is ``state='leased'`` with ``lease_owner`` (an API key id) and ``lease_expires_at``
    (Unix seconds); claims and submissions are single conditional ``UPDATE`` statements so two
    annotators can never hold one task. A ``done`` task can be reopened (its human masks stay) or
    rejected by a reviewer (its masks become ``rejected``, ``review_note`` says why); both make it
    ``open`` again.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "frame_id", name="uq_task_project_frame"),
        Index("ix_tasks_claim", "project_id", "state", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    selection_id: Mapped[int | None] = mapped_column(
        ForeignKey("selections.id", ondelete="SET NULL"), nullable=True
    )
    priority: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(20), default="open")
    lease_owner: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    leases: Mapped[int] = mapped_column(Integer, default=0)
    submitted_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The last reviewer's note when a submission was rejected back into the queue.
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- the retrain loop -----------------------------------------------------------------------------


class Round(Base):
    """One retrain-and-reselect round of a project.

    ``metrics`` holds the proxy's held-out J/F/J&F, training losses and dense-label counts by source;
    ``timings`` seconds per step; ``checkpoint`` the blob path of the proxy's weights.
    """

    __tablename__ = "rounds"
    __table_args__ = (Index("ix_rounds_project_number", "project_id", "number", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="running")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    selection_id: Mapped[int | None] = mapped_column(
        ForeignKey("selections.id", ondelete="SET NULL"), nullable=True
    )
    checkpoint: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FrameScoreRow(Base):
    """A named per-frame score (``entropy``, ``margin``, ...) of one frame, as stored.

    Not to be confused with :class:`curator.eval.FrameScore` (J and F of one object on one frame).

    ``source`` is ``proxy`` (written by a round, ``round_id`` set) or ``external`` (posted from a
    user's own model). The pool of a selection takes, per name, the newest score of each frame.
    """

    __tablename__ = "frame_scores"
    __table_args__ = (Index("ix_frame_scores_lookup", "project_id", "name", "frame_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), nullable=True)
    source: Mapped[str] = mapped_column(String(20), default="proxy")
    name: Mapped[str] = mapped_column(String(50))
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
