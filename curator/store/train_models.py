"""Tables of the retrain loop: rounds and per-frame scores (from the proxy or a user's own model).

They share :class:`curator.store.models.Base`; ``curator.store.db`` imports this module so
``Base.metadata.create_all`` creates them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from curator.store.models import Base, utcnow


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
