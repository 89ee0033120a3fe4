"""Job plumbing of the API: the handler map, submitting, and ``JobPublic``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from api.schemas import ErrorPublic, JobPublic, ProgressPublic
from curator.jobs import JobHandler, engine_handlers
from curator.jobs.admission import admit_job
from curator.jobs.base import JobRunner
from curator.store.models import Job
from curator.workspace import Workspace


def build_handlers(workspace: Workspace) -> dict[str, JobHandler]:
    """Every handler the service runs (the engine's)."""
    return engine_handlers(workspace)


def start_job(
    session: Session,
    runner: JobRunner,
    kind: str,
    project_id: int | None,
    params: dict[str, Any],
    created_by: int,
    *,
    max_queued: int | None = None,
) -> Job:
    """Queue a job (committed, then handed to the runner, so it is never lost), or return the
    identical job already queued; a project may have at most ``max_queued`` queued jobs.

    Raises:
        TooManyJobs: When the project's queue is full (answered 429 ``too_many_jobs``).
    """
    job, _created = admit_job(session, runner, kind, project_id, params, created_by, max_queued=max_queued)
    return job


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; they were written as UTC
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def job_public(job: Job) -> JobPublic:
    """The API view of a job row."""
    created, started, finished = _aware(job.created_at), _aware(job.started_at), _aware(job.finished_at)
    total = job.progress_total
    queued_s = (started - created).total_seconds() if started and created else None
    run_s = None
    if started is not None:
        run_s = ((finished or datetime.now(UTC)) - started).total_seconds()
    return JobPublic(
        id=job.id,
        project_id=job.project_id,
        kind=job.kind,
        state=job.state,
        progress=ProgressPublic(
            stage=job.stage, done=job.progress_done, total=total,
            fraction=(min(1.0, job.progress_done / total) if total else None),
        ),
        params={k: v for k, v in (job.params or {}).items() if k != "path"},
        result=job.result,
        error=ErrorPublic(code=job.error_code, detail=job.error or "") if job.error_code else None,
        created_at=created or datetime.now(UTC),
        started_at=started,
        finished_at=finished,
        queued_s=queued_s,
        run_s=run_s,
        attempts=job.attempts,
    )
