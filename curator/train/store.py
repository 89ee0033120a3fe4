"""Repository functions of the retrain loop: stored per-frame scores, rounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from curator.store.models import FrameScoreRow, Round


def latest_scores(session: Session, project_id: int, frame_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The newest stored value of every score name for ``frame_ids``, as pool-aligned arrays.

    A name is returned when at least one of the frames has it; frames without a value for it get the
    mean of the others (neutral for a selector). Newest means the highest row id, so scores posted from
    a user's model after a round replace that round's scores of the same name.
    """
    newest = (
        select(func.max(FrameScoreRow.id))
        .where(FrameScoreRow.project_id == project_id)
        .group_by(FrameScoreRow.frame_id, FrameScoreRow.name)
    )
    rows = session.execute(
        select(FrameScoreRow.frame_id, FrameScoreRow.name, FrameScoreRow.value).where(FrameScoreRow.id.in_(newest))
    ).all()
    position = {int(f): i for i, f in enumerate(np.asarray(frame_ids).tolist())}
    out: dict[str, np.ndarray] = {}
    for frame_id, name, value in rows:
        i = position.get(int(frame_id))
        if i is None:
            continue
        arr = out.setdefault(name, np.full(len(position), np.nan))
        arr[i] = float(value)
    for arr in out.values():
        arr[np.isnan(arr)] = float(np.nanmean(arr))
    return out


def put_scores(
    session: Session,
    project_id: int,
    scores: Mapping[int, Mapping[str, float]],
    *,
    round_id: int | None = None,
    source: str = "proxy",
) -> int:
    """Store ``{frame_id: {name: value}}``; returns the number of rows written."""
    rows = [
        {"project_id": project_id, "frame_id": int(f), "round_id": round_id, "source": source, "name": n,
         "value": float(v)}
        for f, named in scores.items()
        for n, v in named.items()
        if np.isfinite(v)
    ]
    for lo in range(0, len(rows), 5000):
        session.execute(insert(FrameScoreRow), rows[lo : lo + 5000])
    return len(rows)


def project_rounds(session: Session, project_id: int) -> Sequence[Round]:
    """A project's rounds, oldest first."""
    return session.scalars(select(Round).where(Round.project_id == project_id).order_by(Round.number)).all()
