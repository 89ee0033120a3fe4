"""Job table helpers: create, read, cancel, retry, and recover after a restart.

Every state change is one conditional ``UPDATE`` so two threads (or a runner and a request) never
move a job out of a state the other has already left.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from curator.jobs.owner import owner_gone
from curator.store.models import JOB_FINAL_STATES, Job, utcnow
from curator.workspace import Workspace

INTERRUPTED_MESSAGE = "the server stopped while this job was running; retry it with POST /jobs/{id}/retry"


def create_job(
    session: Session,
    kind: str,
    *,
    project_id: int | None = None,
    params: dict[str, Any] | None = None,
    created_by: int | None = None,
) -> Job:
    """Insert a ``queued`` job and flush it so it has an id (commit before submitting it to a runner)."""
    job = Job(kind=kind, project_id=project_id, params=params or {}, created_by=created_by, state="queued")
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job | None:
    """The job with ``job_id``, or ``None``."""
    return session.get(Job, job_id)


def find_active_job(session: Session, kind: str, project_id: int, **params: Any) -> Job | None:
    """A ``queued`` job of ``kind`` on ``project_id`` whose params include ``params`` (for de-duplication)."""
    jobs = session.scalars(
        select(Job)
        .where(Job.kind == kind, Job.project_id == project_id, Job.state == "queued")
        .order_by(Job.id)
    )
    for job in jobs:
        if all(job.params.get(k) == v for k, v in params.items()):
            return job
    return None


def mark_running(session: Session, job_id: int, owner: str | None = None) -> bool:
    """Move a job from ``queued`` to ``running`` under the runner ``owner`` (its first heartbeat is
    now); False if it is not queued (cancelled meanwhile, or taken by another runner)."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(
            state="running", started_at=utcnow(), finished_at=None, attempts=Job.attempts + 1,
            owner=owner, heartbeat_at=time.time(),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def requeue_job(session: Session, job_id: int, owner: str) -> bool:
    """Put a job ``owner`` was running back in the queue for any runner (its runner is stopping
    and the job has attempts left); False if it is no longer that runner's."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "running", Job.owner == owner)
        .values(state="queued", owner=None, heartbeat_at=None, started_at=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel_requested_ids(session: Session, job_ids: list[int]) -> set[int]:
    """Those of ``job_ids`` whose cancel was requested (through any process)."""
    if not job_ids:
        return set()
    return set(session.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.cancel_requested.is_(True))))


def mark_finished(
    session: Session,
    job_id: int,
    state: str,
    *,
    result: dict[str, Any] | None = None,
    error_code: str | None = None,
    error: str | None = None,
) -> bool:
    """Move a running job to a final state; False if it was not running."""
    if state not in JOB_FINAL_STATES:
        raise ValueError(f"state must be one of {JOB_FINAL_STATES}, got {state!r}")
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "running")
        .values(state=state, result=result, error_code=error_code, error=error, finished_at=utcnow())
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, job_id: int) -> str | None:
    """Cancel a queued job at once, or flag a running one; returns the job's state after, or None.

    A job already in a final state is left as it is.
    """
    queued = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(
            state="cancelled",
            cancel_requested=True,
            finished_at=utcnow(),
            error_code="cancelled",
            error="cancelled before it started",
        )
    )
    if not queued.rowcount:  # type: ignore[attr-defined]
        session.execute(
            update(Job).where(Job.id == job_id, Job.state == "running").values(cancel_requested=True)
        )
    job = session.get(Job, job_id)
    if job is None:
        return None
    session.refresh(job)
    return job.state


def retry_job(session: Session, job_id: int) -> bool:
    """Put a failed, cancelled or interrupted job back in the queue; False if it is in another state."""
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_(("failed", "cancelled", "interrupted")))
        .values(
            state="queued",
            cancel_requested=False,
            error_code=None,
            error=None,
            result=None,
            progress_done=0,
            progress_total=None,
            stage=None,
            started_at=None,
            finished_at=None,
        )
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def recover_jobs(
    workspace: Workspace, *, timeout: float | None = None, max_attempts: int | None = None
) -> tuple[list[int], list[int]]:
    """Deal with ``running`` jobs whose owner is gone, and list the ``queued`` ones.

    An owner is gone when its heartbeat is older than ``timeout`` seconds (default the settings'
    ``runner_timeout_seconds``), when its process no longer exists on this host, or when the job
    has no owner (written before owners existed); jobs of live runners are left to them. A gone
    owner's job that has run fewer than ``max_attempts`` times (default the ``job_max_attempts``
    setting) is queued again, for any runner to take; otherwise it is marked ``interrupted``
    (retryable by hand). Every change is conditional on the heartbeat seen, so a runner that is
    alive after all keeps its job, and two runners recovering at once cannot both take one.

    Returns:
        ``(interrupted job ids, queued job ids)``; the queued ones (re-queued ones among them)
        should be submitted again.
    """
    settings = workspace.settings
    timeout = settings.runner_timeout_seconds if timeout is None else timeout
    max_attempts = settings.job_max_attempts if max_attempts is None else max_attempts
    now = time.time()
    interrupted: list[int] = []
    with workspace.db.session() as session:
        rows = session.execute(
            select(Job.id, Job.owner, Job.heartbeat_at, Job.attempts).where(Job.state == "running")
        ).all()
        for row in rows:
            if not owner_gone(row.owner, row.heartbeat_at, timeout=timeout, now=now):
                continue
            retry = max(int(row.attempts or 0), 1) < max_attempts  # a running job has started once at least
            values: dict[str, Any] = (
                {"state": "queued", "owner": None, "heartbeat_at": None, "started_at": None}
                if retry
                else {"state": "interrupted", "error_code": "interrupted", "finished_at": utcnow(),
                      "error": INTERRUPTED_MESSAGE.replace("{id}", str(row.id))}
            )  # fmt: skip
            done = session.execute(
                update(Job)
                # only as it was seen: a heartbeat since then means its owner is alive after all
                .where(Job.id == row.id, Job.state == "running", Job.heartbeat_at.is_not_distinct_from(row.heartbeat_at))
                .values(**values)
            )
            if done.rowcount and not retry:  # type: ignore[attr-defined]
                interrupted.append(row.id)
        queued = list(session.scalars(select(Job.id).where(Job.state == "queued").order_by(Job.id)))
    return interrupted, queued


def submit_job(
    session: Session,
    runner: Any,
    kind: str,
    project_id: int | None,
    params: dict[str, Any],
    created_by: int | None = None,
) -> Job:
    """Insert a queued job, commit, and hand it to ``runner`` (in that order, so it is never lost)."""
    job = create_job(session, kind, project_id=project_id, params=params, created_by=created_by)
    session.commit()
    runner.submit(job.id)
    return job


def project_jobs(session: Session, project_id: int, limit: int = 50, state: str | None = None) -> list[Job]:
    """The project's newest ``limit`` jobs (only those in ``state`` when given), newest first."""
    stmt = select(Job).where(Job.project_id == project_id)
    if state:
        stmt = stmt.where(Job.state == state)
    return list(session.scalars(stmt.order_by(Job.id.desc()).limit(limit)))


def active_job_ids(session: Session, project_id: int) -> list[int]:
    """Ids of the project's queued and running jobs."""
    return list(
        session.scalars(select(Job.id).where(Job.project_id == project_id, Job.state.in_(("queued", "running"))))
    )
