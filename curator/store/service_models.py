"""Tables of the REST service: jobs, the server lease, API keys and the labelling queue's tasks.

They share :class:`curator.store.models.Base`, so ``Base.metadata.create_all`` creates them with the
engine's tables (``curator.store.db`` imports this module for that reason).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from curator.store.models import Base, utcnow

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


class Task(Base):
    """A frame waiting for (or having received) a human label: one row per frame of a project.

    A lease is ``state='leased'`` with ``lease_owner`` (an API key id) and ``lease_expires_at``
    (Unix seconds); claims and submissions are single conditional ``UPDATE`` statements so two
    annotators can never hold one task.
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
