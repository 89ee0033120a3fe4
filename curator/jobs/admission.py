"""Job admission: identical queued jobs are merged, and a project may have only so many queued.

Every route that starts a job goes through :func:`admit_job`: when a ``queued`` job of the same
kind, project and parameters exists, that job is returned instead of queuing a copy; otherwise the
job is queued unless the project already has ``max_queued`` queued jobs (:class:`TooManyJobs`,
answered 429 ``too_many_jobs`` by the API). Running jobs do not count: the limit bounds the backlog.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from curator.jobs.base import JobRunner
from curator.jobs.store import find_active_job, submit_job
from curator.store.models import Job


class TooManyJobs(Exception):
    """A project already has the most queued jobs allowed.

    Args:
        project_id: The project.
        limit: Its limit (``max_queued_jobs``).
    """

    def __init__(self, project_id: int, limit: int) -> None:
        super().__init__(
            f"project {project_id} already has {limit} queued jobs (max_queued_jobs); "
            "wait for some to run, or cancel some, and try again"
        )
        self.project_id = project_id
        self.limit = limit


def queued_count(session: Session, project_id: int) -> int:
    """How many jobs of ``project_id`` are ``queued``."""
    return int(session.scalar(select(func.count(Job.id)).where(Job.project_id == project_id, Job.state == "queued")) or 0)


def check_capacity(session: Session, project_id: int, max_queued: int | None) -> None:
    """Raise :class:`TooManyJobs` if ``project_id`` has ``max_queued`` queued jobs (``None``: no limit)."""
    if max_queued is not None and queued_count(session, project_id) >= max_queued:
        raise TooManyJobs(project_id, max_queued)


def find_queued_twin(session: Session, kind: str, project_id: int | None, params: dict[str, Any]) -> Job | None:
    """A ``queued`` job of ``kind`` on ``project_id`` with exactly ``params``, or ``None``."""
    if project_id is None:
        return None
    job = find_active_job(session, kind, project_id, **params)
    return job if job is not None and dict(job.params or {}) == params else None


def admit_job(
    session: Session,
    runner: JobRunner,
    kind: str,
    project_id: int | None,
    params: dict[str, Any],
    created_by: int | None = None,
    *,
    max_queued: int | None = None,
) -> tuple[Job, bool]:
    """Queue a job unless an identical one is queued, within the project's limit of queued jobs.

    Args:
        session: The caller's session; committed when a job is queued.
        runner: Runs the new job.
        kind: Job kind.
        project_id: Its project.
        params: Its parameters (JSON).
        created_by: Id of the API key that asked for it.
        max_queued: Most queued jobs the project may have (``None``: no limit). A merge never counts.

    Returns:
        ``(job, created)``: the new job, or the identical queued one with ``created`` False.

    Raises:
        TooManyJobs: If a new job is needed and the project's queue is full.
    """
    twin = find_queued_twin(session, kind, project_id, params)
    if twin is not None:
        return twin, False
    if project_id is not None:
        check_capacity(session, project_id, max_queued)
    return submit_job(session, runner, kind, project_id, params, created_by), True
