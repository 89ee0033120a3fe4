"""Repository functions: all the SQL the engine, CLI and API share (routes never hold SQL).

Queue operations are single conditional statements so they stay atomic under concurrency on
SQLite (one writer at a time, WAL) and PostgreSQL alike: a claim is
``UPDATE tasks SET state='leased' ... WHERE id IN (SELECT ... LIMIT n) AND state='open' RETURNING``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import Integer, Table, and_, bindparam, case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from curator.store.models import (
    Annotation,
    ApiKey,
    Category,
    Embedding,
    Frame,
    ObjectCategory,
    Project,
    SelectionItem,
    SelectionRun,
    Shot,
    Task,
    Video,
    utcnow,
)

TASKS: Table = cast(Table, Task.__table__)
ANNOTATIONS: Table = cast(Table, Annotation.__table__)
FRAMES: Table = cast(Table, Frame.__table__)


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
    rows = session.connection().execute(stmt).all()  # plain rows: no ORM bookkeeping for 10^4-10^5 of them
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    if len({len(r[1]) for r in rows}) == 1:  # one dimension: one buffer, one copy
        vectors = np.frombuffer(b"".join([r[1] for r in rows]), dtype=np.float32).reshape(len(rows), -1)
    else:
        vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])  # raises: mixed dimensions
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



# --- projects -------------------------------------------------------------------------------------


def project_counts(session: Session, project_ids: Sequence[int] | None = None) -> list[tuple[Project, int, int]]:
    """``(Project, videos, frames)`` rows, for all projects or those in ``project_ids``."""
    videos = (
        select(Video.project_id, func.count(Video.id).label("n")).group_by(Video.project_id).subquery()
    )
    frames = (
        select(Video.project_id, func.count(Frame.id).label("n"))
        .join(Frame, Frame.video_id == Video.id)
        .group_by(Video.project_id)
        .subquery()
    )
    stmt = (
        select(Project, func.coalesce(videos.c.n, 0), func.coalesce(frames.c.n, 0))
        .outerjoin(videos, videos.c.project_id == Project.id)
        .outerjoin(frames, frames.c.project_id == Project.id)
        .order_by(Project.id)
    )
    if project_ids is not None:
        stmt = stmt.where(Project.id.in_(list(project_ids)))
    return [(p, int(v), int(f)) for p, v, f in session.execute(stmt).all()]


def delete_project(session: Session, project_id: int) -> None:
    """Delete a project's rows; the database cascades to videos, frames, annotations, tasks and jobs."""
    session.execute(delete(Project).where(Project.id == project_id))


def project_videos(session: Session, project_id: int) -> list[tuple[Video, int]]:
    """``(Video, frame count)`` rows of a project."""
    counts = select(Frame.video_id, func.count(Frame.id).label("n")).group_by(Frame.video_id).subquery()
    stmt = (
        select(Video, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.video_id == Video.id)
        .where(Video.project_id == project_id)
        .order_by(Video.id)
    )
    return [(v, int(n)) for v, n in session.execute(stmt).all()]


def frame_project(session: Session, frame_id: int) -> tuple[Frame, int] | None:
    """A frame and its project id."""
    row = session.execute(
        select(Frame, Video.project_id).join(Video, Video.id == Frame.video_id).where(Frame.id == frame_id)
    ).first()
    return None if row is None else (row[0], int(row[1]))


def frames_by_id(session: Session, frame_ids: Sequence[int]) -> list[Frame]:
    """The frames with these ids, in one query (ids that do not exist are left out)."""
    if not frame_ids:
        return []
    return list(session.scalars(select(Frame).where(Frame.id.in_(sorted(set(frame_ids))))).all())


# --- tasks ----------------------------------------------------------------------------------------


def create_tasks(
    session: Session, project_id: int, selection_id: int | None, picks: Sequence[tuple[int, str]]
) -> dict[int, int]:
    """Queue one task per picked frame ``(frame_id, reason)``; frames that already have a task keep it.

    Returns:
        Frame id to task id for every pick.
    """
    frame_ids = [f for f, _ in picks]
    existing = dict(
        session.execute(
            select(Task.frame_id, Task.id).where(Task.project_id == project_id, Task.frame_id.in_(frame_ids))
        ).all()
    )
    new = [
        {"project_id": project_id, "frame_id": f, "selection_id": selection_id, "reason": r, "state": "open",
         "priority": 0, "leases": 0, "created_at": utcnow()}
        for f, r in picks
        if f not in existing
    ]
    if new:
        session.execute(insert(TASKS), new)
        existing = dict(
            session.execute(
                select(Task.frame_id, Task.id).where(Task.project_id == project_id, Task.frame_id.in_(frame_ids))
            ).all()
        )
    return {int(k): int(v) for k, v in existing.items()}


@dataclass(frozen=True)
class Lease:
    """A task leased by a claim, with where its frame is."""

    id: int
    frame_id: int
    video_id: int
    frame_index: int
    reason: str
    lease_expires_at: float


# The queue's hot statements are built once, with bound parameters: building a statement (and, for
# ORM entities, the ORM's execution path) costs several times what SQLite takes to run it.
_RELEASE_EXPIRED = (
    update(TASKS)
    .where(TASKS.c.project_id == bindparam("p_project"), TASKS.c.state == "leased",
           TASKS.c.lease_expires_at < bindparam("p_now"))
    .values(state="open", lease_owner=None, lease_expires_at=None)
)
_PICKED = (
    select(TASKS.c.id)
    .where(TASKS.c.project_id == bindparam("p_project"), TASKS.c.state == "open")
    .order_by(TASKS.c.priority, TASKS.c.id)
    .limit(bindparam("p_limit", type_=Integer))
    # PostgreSQL: rows another claim has locked are skipped, not waited for (and then found
    # leased), so concurrent claims on several replicas each get other tasks; SQLite, whose
    # writes are serial anyway, renders no locking clause
    .with_for_update(skip_locked=True)
    # evaluated once: as a plain IN (subquery) PostgreSQL may run a locking subquery more than
    # once and so lease more than the limit
    .cte("picked")
    .prefix_with("MATERIALIZED")
)
_CLAIM = (
    update(TASKS)
    .where(TASKS.c.id.in_(select(_PICKED.c.id)), TASKS.c.state == "open")
    .values(state="leased", lease_owner=bindparam("p_owner"), lease_expires_at=bindparam("p_expires"),
            leases=TASKS.c.leases + 1)
    .returning(
        TASKS.c.id, TASKS.c.frame_id, TASKS.c.reason,
        # where the frame is, in the same statement (a RETURNING clause may hold scalar subqueries)
        select(FRAMES.c.video_id).where(FRAMES.c.id == TASKS.c.frame_id).scalar_subquery().label("video_id"),
        select(FRAMES.c.frame_index).where(FRAMES.c.id == TASKS.c.frame_id).scalar_subquery().label("frame_index"),
    )
)
_FINISH = (
    update(TASKS)
    .where(
        TASKS.c.id == bindparam("p_task"),
        TASKS.c.state == "leased",
        TASKS.c.lease_owner == bindparam("p_owner"),
        TASKS.c.lease_expires_at >= bindparam("p_now"),
    )
    .values(state="done", submitted_by=bindparam("p_owner"), submitted_at=bindparam("p_done_at"),
            lease_expires_at=None)
)
_DELETE_HUMAN = delete(ANNOTATIONS).where(
    ANNOTATIONS.c.frame_id == bindparam("p_frame"), ANNOTATIONS.c.source.in_(("human", "rejected"))
)
_TASK_TARGET = (
    select(TASKS.c.project_id, FRAMES.c.id, FRAMES.c.video_id, FRAMES.c.height, FRAMES.c.width)
    .join(FRAMES, FRAMES.c.id == TASKS.c.frame_id)
    .where(TASKS.c.id == bindparam("p_task"))
)


def release_expired(session: Session, project_id: int, now: float) -> int:
    """Return the project's expired leases to the pool; returns how many."""
    done = session.execute(_RELEASE_EXPIRED, {"p_project": project_id, "p_now": now})
    return int(done.rowcount)  # type: ignore[attr-defined]


def claim_tasks(session: Session, project_id: int, owner: int, limit: int, lease_seconds: float) -> list[Lease]:
    """Lease up to ``limit`` open tasks of a project to ``owner`` (an API key id), oldest first.

    Expired leases are returned to the pool first, in the same transaction. The claim itself is one
    ``UPDATE ... RETURNING`` whose ``WHERE`` re-checks ``state='open'``, so concurrent claims never
    lease a task twice. The caller commits.
    """
    now = time.time()
    release_expired(session, project_id, now)
    expires = now + lease_seconds
    rows = session.execute(
        _CLAIM, {"p_project": project_id, "p_limit": limit, "p_owner": owner, "p_expires": expires}
    ).all()
    return sorted(
        (Lease(r.id, r.frame_id, r.video_id, r.frame_index, r.reason, expires) for r in rows),
        key=lambda lease: lease.id,
    )


def task_with_frame(session: Session, task_id: int) -> tuple[Task, Frame] | None:
    """A task and its frame."""
    row = session.execute(select(Task, Frame).join(Frame, Frame.id == Task.frame_id).where(Task.id == task_id)).first()
    return None if row is None else (row[0], row[1])


@dataclass(frozen=True)
class TaskTarget:
    """What a submission needs of a task: its project, and its frame's id, video and size."""

    project_id: int
    frame_id: int
    video_id: int
    height: int
    width: int


def task_target(session: Session, task_id: int) -> TaskTarget | None:
    """The project of a task and its frame's id, video and size (one read, no ORM objects); ``None``
    if there is no such task."""
    row = session.execute(_TASK_TARGET, {"p_task": task_id}).first()
    return None if row is None else TaskTarget(*(int(v) for v in row))


def finish_task(session: Session, task_id: int, owner: int, now: float) -> bool:
    """Mark a task done if ``owner`` holds an unexpired lease on it (one conditional UPDATE)."""
    done = session.execute(
        _FINISH, {"p_task": task_id, "p_owner": owner, "p_now": now, "p_done_at": utcnow()}
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def release_task(session: Session, task_id: int, owner: int | None) -> bool:
    """Return a leased task to the pool; with ``owner`` only if that key holds the lease."""
    conditions = [TASKS.c.id == task_id, TASKS.c.state == "leased"]
    if owner is not None:
        conditions.append(TASKS.c.lease_owner == owner)
    done = session.execute(
        update(TASKS).where(and_(*conditions)).values(state="open", lease_owner=None, lease_expires_at=None)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def store_human_masks(session: Session, frame_id: int, masks: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Replace the human masks of a frame with ``(object_id, rle)`` pairs (and drop the ``rejected``
    masks a reviewer sent back: the new ones replace them)."""
    session.execute(_DELETE_HUMAN, {"p_frame": frame_id})
    if masks:
        session.execute(
            insert(ANNOTATIONS),
            [
                {"frame_id": frame_id, "object_id": o, "source": "human", "rle": r, "confidence": 1.0,
                 "created_at": utcnow()}
                for o, r in masks
            ],
        )


def reopen_task(session: Session, task_id: int) -> bool:
    """Put a ``done`` task back in the queue (``open``); its human masks stay as they are (still the
    frame's label, and its pre-annotation) until a new submission replaces them.

    Returns:
        False if the task is not ``done``.
    """
    done = session.execute(
        update(TASKS)
        .where(TASKS.c.id == task_id, TASKS.c.state == "done")
        .values(state="open", lease_owner=None, lease_expires_at=None)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def reject_task(session: Session, task_id: int, note: str) -> bool:
    """Send a ``done`` task back to the queue with a reviewer's note.

    The task becomes ``open`` with ``review_note``; its frame's human masks become ``rejected``: no
    longer a label (not exported, propagated or trained on), still shown as the task's pre-annotation
    until a new submission replaces them.

    Returns:
        False if the task is not ``done``.
    """
    done = session.execute(
        update(TASKS)
        .where(TASKS.c.id == task_id, TASKS.c.state == "done")
        .values(state="open", lease_owner=None, lease_expires_at=None, review_note=note)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        return False
    frame_id = session.scalar(select(Task.frame_id).where(Task.id == task_id))
    session.execute(delete(Annotation).where(Annotation.frame_id == frame_id, Annotation.source == "rejected"))
    session.execute(
        update(ANNOTATIONS)
        .where(ANNOTATIONS.c.frame_id == frame_id, ANNOTATIONS.c.source == "human")
        .values(source="rejected")
    )
    return True


#: Sources a task's pre-annotation is taken from, best first (the best one present on the frame wins).
PRE_ANNOTATION_SOURCES = ("human", "rejected", "propagated", "predicted", "model")


def pre_annotation(session: Session, frame_id: int) -> list[Annotation]:
    """The pre-annotation of a frame: its masks of the best source present, in the order of
    :data:`PRE_ANNOTATION_SOURCES` (a reopened task shows its human masks, a rejected one its
    ``rejected`` masks, others their propagated or predicted masks), by object id."""
    found = frame_annotations(session, frame_id, PRE_ANNOTATION_SOURCES)
    if not found:
        return []
    best = min(PRE_ANNOTATION_SOURCES.index(a.source) for a in found)
    return [a for a in found if a.source == PRE_ANNOTATION_SOURCES[best]]


@dataclass(frozen=True)
class QueuedFrame:
    """An open or leased task and where its frame is."""

    task_id: int
    frame_id: int
    video_id: int


def queued_frames(session: Session, project_id: int, task_ids: Sequence[int] | None = None) -> list[QueuedFrame]:
    """The project's ``open`` and ``leased`` tasks (only those among ``task_ids`` when given), by id."""
    stmt = (
        select(Task.id, Task.frame_id, Frame.video_id)
        .join(Frame, Frame.id == Task.frame_id)
        .where(Task.project_id == project_id, Task.state.in_(("open", "leased")))
        .order_by(Task.id)
    )
    if task_ids is not None:
        stmt = stmt.where(Task.id.in_([int(t) for t in task_ids]))
    return [QueuedFrame(int(t), int(f), int(v)) for t, f, v in session.execute(stmt).all()]


def frames_with_sources(session: Session, frame_ids: Sequence[int], sources: Sequence[str]) -> set[int]:
    """The ids among ``frame_ids`` with at least one annotation from ``sources``."""
    ids = [int(i) for i in frame_ids]
    out: set[int] = set()
    for lo in range(0, len(ids), 500):
        out.update(
            int(f)
            for f in session.scalars(
                select(Annotation.frame_id)
                .where(Annotation.frame_id.in_(ids[lo : lo + 500]), Annotation.source.in_(list(sources)))
                .distinct()
            )
        )
    return out


def queue_counts(session: Session, project_id: int) -> dict[str, int]:
    """Task counts of a project by state, with expired leases counted apart."""
    now = time.time()
    expired = case((and_(Task.state == "leased", Task.lease_expires_at < now), 1), else_=0)
    rows = session.execute(
        select(Task.state, func.count(Task.id), func.sum(expired)).where(Task.project_id == project_id).group_by(Task.state)
    ).all()
    counts = {"open": 0, "leased": 0, "expired": 0, "done": 0}
    for state, n, n_expired in rows:
        counts[state] = counts.get(state, 0) + int(n)
        counts["expired"] += int(n_expired or 0)
    counts["leased"] -= counts["expired"]
    counts["total"] = sum(counts[s] for s in ("open", "leased", "expired", "done"))
    return counts


# --- categories and objects -----------------------------------------------------------------------

#: A category colour: ``#rrggbb``.
COLOR_PATTERN = r"^#[0-9a-fA-F]{6}$"


class DuplicateNameError(ValueError):
    """A row with this name exists already (a category of the same project)."""


def project_categories(session: Session, project_id: int) -> list[Category]:
    """The project's categories, by id."""
    return list(session.scalars(select(Category).where(Category.project_id == project_id).order_by(Category.id)))


def category_of_project(session: Session, project_id: int, category_id: int) -> Category | None:
    """The category ``category_id`` if it belongs to the project."""
    category = session.get(Category, category_id)
    return category if category is not None and category.project_id == project_id else None


def add_category(session: Session, project_id: int, name: str, color: str) -> Category:
    """Add a category to a project (the caller commits).

    Args:
        session: Open session.
        project_id: The project.
        name: 1 to 100 characters (surrounding spaces are dropped); unique in the project.
        color: ``#rrggbb`` (stored in lower case).

    Raises:
        ValueError: For an empty or too long name, or a colour that is not ``#rrggbb``.
        DuplicateNameError: If the project has a category of that name.
    """
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValueError("a category name has 1 to 100 characters")
    if not re.fullmatch(COLOR_PATTERN, color or ""):
        raise ValueError(f"a colour is '#rrggbb' (six hex digits), got {color!r}")
    if session.scalar(select(Category.id).where(Category.project_id == project_id, Category.name == name)):
        raise DuplicateNameError(f"project {project_id} has a category named {name!r} already")
    category = Category(project_id=project_id, name=name, color=color.lower())
    session.add(category)
    session.flush()
    return category


def set_object_category(session: Session, project_id: int, object_id: int, category_id: int | None) -> None:
    """Give object ``object_id`` of the project the category ``category_id`` (``None``: none).

    The caller checks that the category belongs to the project (:func:`category_of_project`).
    """
    row = session.scalar(
        select(ObjectCategory).where(ObjectCategory.project_id == project_id, ObjectCategory.object_id == object_id)
    )
    if category_id is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(ObjectCategory(project_id=project_id, object_id=object_id, category_id=category_id))
    else:
        row.category_id = category_id
    session.flush()


def object_categories(session: Session, project_id: int) -> dict[int, int]:
    """Object id to category id for the project's objects that have a category."""
    rows = session.execute(
        select(ObjectCategory.object_id, ObjectCategory.category_id).where(ObjectCategory.project_id == project_id)
    )
    return {int(o): int(c) for o, c in rows}


# --- frames and annotations -----------------------------------------------------------------------


def neighbours(session: Session, frame: Frame, k: int) -> list[Frame]:
    """Up to ``k`` stored frames before and ``k`` after ``frame`` in its video, in time order."""
    before = session.scalars(
        select(Frame)
        .where(Frame.video_id == frame.video_id, Frame.frame_index < frame.frame_index)
        .order_by(Frame.frame_index.desc())
        .limit(k)
    ).all()
    after = session.scalars(
        select(Frame)
        .where(Frame.video_id == frame.video_id, Frame.frame_index > frame.frame_index)
        .order_by(Frame.frame_index)
        .limit(k)
    ).all()
    return [*reversed(before), *after]


def frame_annotations(session: Session, frame_id: int, sources: Sequence[str] | None = None) -> list[Annotation]:
    """Annotations of a frame, optionally only from ``sources``, by object id."""
    stmt = select(Annotation).where(Annotation.frame_id == frame_id)
    if sources is not None:
        stmt = stmt.where(Annotation.source.in_(list(sources)))
    return list(session.scalars(stmt.order_by(Annotation.object_id, Annotation.id)))


def replace_masks(
    session: Session, frame_id: int, source: str, masks: Sequence[tuple[int, dict[str, Any], float | None]]
) -> None:
    """Replace a frame's masks of one machine ``source`` (``model``, say) with ``masks``:
    ``(object id, RLE, confidence)``."""
    session.execute(delete(Annotation).where(Annotation.frame_id == frame_id, Annotation.source == source))
    session.add_all(
        Annotation(frame_id=frame_id, object_id=o, source=source, rle=r, confidence=c) for o, r, c in masks
    )


def frame_blob_paths(session: Session, frame_ids: Sequence[int]) -> dict[int, str]:
    """Frame id to its image's blob path, for the ids among ``frame_ids`` that exist."""
    ids = [int(i) for i in frame_ids]
    out: dict[int, str] = {}
    for lo in range(0, len(ids), 500):
        rows = session.execute(select(Frame.id, Frame.blob_path).where(Frame.id.in_(ids[lo : lo + 500])))
        out.update({int(f): str(b) for f, b in rows})
    return out


# --- selections -----------------------------------------------------------------------------------


def selection_picks(
    session: Session, selection_id: int
) -> tuple[SelectionRun, list[tuple[SelectionItem, Frame, int | None]]] | None:
    """A selection and its ``(SelectionItem, Frame, task id)`` rows in pick order."""
    selection = session.get(SelectionRun, selection_id)
    if selection is None:
        return None
    rows = session.execute(
        select(SelectionItem, Frame, Task.id)
        .join(Frame, Frame.id == SelectionItem.frame_id)
        .outerjoin(Task, and_(Task.frame_id == SelectionItem.frame_id, Task.project_id == selection.project_id))
        .where(SelectionItem.selection_id == selection_id)
        .order_by(SelectionItem.rank)
    ).all()
    return selection, [(item, frame, task_id) for item, frame, task_id in rows]


def complete_frame_tasks(session: Session, project_id: int, frame_ids: Sequence[int], owner: int) -> int:
    """Mark the open or leased tasks of ``frame_ids`` done (their frames were labelled another way)."""
    if not frame_ids:
        return 0
    done = session.execute(
        update(TASKS)
        .where(
            TASKS.c.project_id == project_id,
            TASKS.c.frame_id.in_(list(frame_ids)),
            TASKS.c.state.in_(("open", "leased")),
        )
        .values(state="done", submitted_by=owner, submitted_at=utcnow(), lease_expires_at=None)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def videos_with_human_masks(session: Session, project_id: int) -> list[int]:
    """Ids of the project's videos that have at least one human mask, in order."""
    stmt = (
        select(Frame.video_id)
        .join(Annotation, Annotation.frame_id == Frame.id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.project_id == project_id, Annotation.source == "human")
        .distinct()
        .order_by(Frame.video_id)
    )
    return [int(v) for v in session.scalars(stmt)]


def video_of_project(session: Session, project_id: int, video_id: int) -> Video | None:
    """The video ``video_id`` if it belongs to the project."""
    video = session.get(Video, video_id)
    return video if video is not None and video.project_id == project_id else None


@dataclass(frozen=True)
class FrameLookup:
    """Finds a project's frames by video (id, file name, file stem or export folder) and frame index."""

    frames: dict[tuple[int, int], Frame]
    names: dict[str, int]

    def find(self, video: int | str | None, frame_index: int) -> Frame | None:
        """The frame ``frame_index`` of ``video``; with ``video=None`` only when there is one video."""
        if video is None:
            ids = set(self.names.values())
            if len(ids) != 1:
                return None
            video_id = ids.pop()
        elif isinstance(video, int) or str(video).isdigit():
            video_id = int(video)
        else:
            # an export's folder ``<id>_<stem>`` names a video of another project by its stem
            found = self.names.get(str(video), self.names.get(re.sub(r"^\d{4,}_", "", str(video))))
            if found is None:
                return None
            video_id = found
        return self.frames.get((video_id, int(frame_index)))


def frame_lookup(session: Session, project_id: int) -> FrameLookup:
    """A :class:`FrameLookup` over every stored frame of the project."""
    names: dict[str, int] = {}
    for video in session.scalars(select(Video).where(Video.project_id == project_id).order_by(Video.id)):
        for name in (video.filename, video.filename.rsplit(".", 1)[0], video_folder(video.id, video.filename)):
            names.setdefault(name, video.id)
    frames = {(f.video_id, f.frame_index): f for f in project_frames(session, project_id)}
    return FrameLookup(frames, names)


def video_folder(video_id: int, filename: str) -> str:
    """A safe folder name for a video in exports: ``<id>_<file stem>``."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", filename.rsplit(".", 1)[0]).strip("_")[:60]
    return f"{video_id:04d}_{stem}" if stem else f"{video_id:04d}"


def frames_not_in_project(session: Session, project_id: int, frame_ids: Sequence[int]) -> list[int]:
    """The ids among ``frame_ids`` that are not frames of the project, sorted."""
    known = set(
        session.scalars(
            select(Frame.id)
            .join(Video, Video.id == Frame.video_id)
            .where(Video.project_id == project_id, Frame.id.in_(list(frame_ids)))
        )
    )
    return sorted(int(i) for i in set(frame_ids) - known)


def frame_videos(session: Session, frame_ids: Sequence[int]) -> dict[int, int]:
    """Frame id to video id for ``frame_ids`` (unknown ids are absent)."""
    out: dict[int, int] = {}
    ids = [int(i) for i in frame_ids]
    for lo in range(0, len(ids), 500):
        rows = session.execute(select(Frame.id, Frame.video_id).where(Frame.id.in_(ids[lo : lo + 500])))
        out.update({int(f): int(v) for f, v in rows})
    return out


# --- read models of the project view (curator.views) ----------------------------------------------


def project_shots(session: Session, project_id: int) -> list[tuple[Shot, int]]:
    """``(Shot, stored frame count)`` rows of every video of a project, by video then shot index."""
    counts = select(Frame.shot_id, func.count(Frame.id).label("n")).group_by(Frame.shot_id).subquery()
    stmt = (
        select(Shot, func.coalesce(counts.c.n, 0))
        .join(Video, Video.id == Shot.video_id)
        .outerjoin(counts, counts.c.shot_id == Shot.id)
        .where(Video.project_id == project_id)
        .order_by(Shot.video_id, Shot.index)
    )
    return [(s, int(n)) for s, n in session.execute(stmt).all()]


@dataclass(frozen=True)
class PickRow:
    """A stored pick with where its frame is and the state of its task (``None``: not queued)."""

    selection_id: int
    frame_id: int
    video_id: int
    frame_index: int
    timestamp: float
    rank: int
    utility: float
    reason: str
    task_id: int | None
    task_state: str | None


def _task_state_expr(now: float) -> Any:
    """The task state as a caller sees it: a lease past its expiry reads ``open``."""
    return case((and_(Task.state == "leased", Task.lease_expires_at < now), "open"), else_=Task.state)


def project_picks(
    session: Session,
    project_id: int,
    *,
    video_id: int | None = None,
    selection_id: int | None = None,
    limit: int | None = None,
) -> list[PickRow]:
    """The picks of a project's selections (only of one video, or one selection, when given), newest
    selection first, each in rank order, at most ``limit``."""
    stmt = (
        select(
            SelectionItem.selection_id, SelectionItem.frame_id, Frame.video_id, Frame.frame_index, Frame.timestamp,
            SelectionItem.rank, SelectionItem.utility, SelectionItem.reason, Task.id, _task_state_expr(time.time()),
        )
        .join(SelectionRun, SelectionRun.id == SelectionItem.selection_id)
        .join(Frame, Frame.id == SelectionItem.frame_id)
        .outerjoin(Task, and_(Task.frame_id == SelectionItem.frame_id, Task.project_id == project_id))
        .where(SelectionRun.project_id == project_id)
        .order_by(SelectionItem.selection_id.desc(), SelectionItem.rank)
    )
    if video_id is not None:
        stmt = stmt.where(Frame.video_id == video_id)
    if selection_id is not None:
        stmt = stmt.where(SelectionItem.selection_id == selection_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        PickRow(int(s), int(f), int(v), int(i), float(t), int(r), float(u), str(reason),
                None if task is None else int(task), state)
        for s, f, v, i, t, r, u, reason, task, state in session.execute(stmt).all()
    ]


def project_selections(session: Session, project_id: int) -> list[tuple[SelectionRun, int]]:
    """``(SelectionRun, picks)`` rows of a project, newest first."""
    counts = (
        select(SelectionItem.selection_id, func.count(SelectionItem.id).label("n"))
        .group_by(SelectionItem.selection_id)
        .subquery()
    )
    stmt = (
        select(SelectionRun, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.selection_id == SelectionRun.id)
        .where(SelectionRun.project_id == project_id)
        .order_by(SelectionRun.id.desc())
    )
    return [(s, int(n)) for s, n in session.execute(stmt).all()]


def human_frames(session: Session, project_id: int, video_id: int | None = None) -> list[tuple[int, int, float]]:
    """``(frame id, video id, timestamp)`` of the project's frames with a human mask, by video and time."""
    stmt = (
        select(Frame.id, Frame.video_id, Frame.timestamp)
        .join(Video, Video.id == Frame.video_id)
        .where(
            Video.project_id == project_id,
            Frame.id.in_(select(Annotation.frame_id).where(Annotation.source == "human")),
        )
        .order_by(Frame.video_id, Frame.frame_index)
    )
    if video_id is not None:
        stmt = stmt.where(Frame.video_id == video_id)
    return [(int(f), int(v), float(t)) for f, v, t in session.execute(stmt).all()]


@dataclass(frozen=True)
class AnnotatorCounts:
    """One lease owner's share of a project's queue (``key_id`` 0: the library and the CLI)."""

    key_id: int
    prefix: str | None
    name: str | None
    leased: int
    done: int


def annotator_counts(session: Session, project_id: int) -> list[AnnotatorCounts]:
    """Per lease owner (API key): tasks leased now (unexpired) and tasks submitted, by key id."""
    now = time.time()
    leased = dict(
        session.execute(
            select(Task.lease_owner, func.count(Task.id))
            .where(Task.project_id == project_id, Task.state == "leased", Task.lease_expires_at >= now)
            .group_by(Task.lease_owner)
        ).all()
    )
    done = dict(
        session.execute(
            select(Task.submitted_by, func.count(Task.id))
            .where(Task.project_id == project_id, Task.state == "done", Task.submitted_by.is_not(None))
            .group_by(Task.submitted_by)
        ).all()
    )
    owners = sorted({int(k) for k in (*leased, *done) if k is not None})
    keys = {
        int(i): (p, n)
        for i, p, n in session.execute(select(ApiKey.id, ApiKey.prefix, ApiKey.name).where(ApiKey.id.in_(owners)))
    }
    return [
        AnnotatorCounts(o, keys.get(o, (None, None))[0], keys.get(o, (None, None))[1],
                        int(leased.get(o, 0)), int(done.get(o, 0)))
        for o in owners
    ]


@dataclass(frozen=True)
class FrameColumns:
    """Per-frame columns of a project or a video, in video then time order."""

    ids: np.ndarray
    video_ids: np.ndarray
    shot_ids: np.ndarray  # -1 for a frame without a shot
    frame_index: np.ndarray
    timestamps: np.ndarray


def frame_columns(session: Session, project_id: int, video_id: int | None = None) -> FrameColumns:
    """:class:`FrameColumns` of every frame of a project (of one video when given), read as plain rows."""
    stmt = (
        select(Frame.id, Frame.video_id, Frame.shot_id, Frame.frame_index, Frame.timestamp)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.project_id == project_id)
        .order_by(Frame.video_id, Frame.frame_index)
    )
    if video_id is not None:
        stmt = stmt.where(Frame.video_id == video_id)
    rows = session.connection().execute(stmt).all()  # plain rows: no ORM bookkeeping
    return FrameColumns(
        ids=np.array([r[0] for r in rows], dtype=np.int64),
        video_ids=np.array([r[1] for r in rows], dtype=np.int64),
        shot_ids=np.array([-1 if r[2] is None else r[2] for r in rows], dtype=np.int64),
        frame_index=np.array([r[3] for r in rows], dtype=np.int64),
        timestamps=np.array([r[4] for r in rows], dtype=np.float64),
    )


def annotation_summary(session: Session, video_id: int) -> list[tuple[int, str, float, int]]:
    """``(frame id, source, lowest object confidence, objects)`` per frame and source of a video's masks."""
    stmt = (
        select(Annotation.frame_id, Annotation.source, func.min(Annotation.confidence), func.count(Annotation.id))
        .join(Frame, Frame.id == Annotation.frame_id)
        .where(Frame.video_id == video_id)
        .group_by(Annotation.frame_id, Annotation.source)
    )
    return [(int(f), str(s), float(c), int(n)) for f, s, c, n in session.execute(stmt).all()]


def task_states(session: Session, project_id: int, video_id: int | None = None) -> dict[int, str]:
    """Frame id to the state of its task (an expired lease reads ``open``) for the project's tasks
    (on frames of one video when given)."""
    stmt = select(Task.frame_id, _task_state_expr(time.time())).where(Task.project_id == project_id)
    if video_id is not None:
        stmt = stmt.join(Frame, Frame.id == Task.frame_id).where(Frame.video_id == video_id)
    return {int(f): str(s) for f, s in session.execute(stmt).all()}


def picked_frame_ids(session: Session, project_id: int) -> set[int]:
    """Ids of the frames any selection of the project picked."""
    stmt = (
        select(SelectionItem.frame_id)
        .join(SelectionRun, SelectionRun.id == SelectionItem.selection_id)
        .where(SelectionRun.project_id == project_id)
        .distinct()
    )
    return {int(f) for f in session.scalars(stmt)}


def video_names(session: Session, project_id: int) -> list[tuple[int, str]]:
    """``(video id, file name)`` of a project's videos, by id."""
    rows = session.execute(select(Video.id, Video.filename).where(Video.project_id == project_id).order_by(Video.id))
    return [(int(i), str(f)) for i, f in rows]


def embedding_version(session: Session, project_id: int, backbone: str) -> tuple[int, int]:
    """``(count, highest row id)`` of a project's embeddings under ``backbone``: changes whenever one
    is added or removed, so it names one state of the embeddings (and of the index built from them)."""
    row = session.execute(
        select(func.count(Embedding.id), func.coalesce(func.max(Embedding.id), 0))
        .join(Frame, Frame.id == Embedding.frame_id)
        .join(Video, Video.id == Frame.video_id)
        .where(Video.project_id == project_id, Embedding.backbone == backbone)
    ).one()
    return int(row[0]), int(row[1])


def existing_tasks(session: Session, project_id: int, frame_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Frame id to ``(task id, state)`` for those of ``frame_ids`` that have a task in the project."""
    out: dict[int, tuple[int, str]] = {}
    ids = [int(i) for i in frame_ids]
    for lo in range(0, len(ids), 500):
        rows = session.execute(
            select(Task.frame_id, Task.id, _task_state_expr(time.time())).where(
                Task.project_id == project_id, Task.frame_id.in_(ids[lo : lo + 500])
            )
        )
        out.update({int(f): (int(t), str(s)) for f, t, s in rows})
    return out
