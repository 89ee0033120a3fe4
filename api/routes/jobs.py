"""Jobs: state, progress, timings and errors; cancel and retry."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.auth import Principal
from api.deps import PrincipalDep, RunnerDep, SessionDep, require
from api.errors import ApiError, not_found
from api.jobs import job_public
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.schemas import JobPublic
from curator.jobs import get_job, request_cancel, retry_job
from curator.jobs.store import project_jobs
from curator.store.models import Job

router = APIRouter(tags=["jobs"])


def _job_for(session: Session, principal: Principal, job_id: int, role: str) -> Job:
    job = get_job(session, job_id)
    if job is None or (principal.project_id is not None and job.project_id != principal.project_id):
        raise not_found("job", job_id)
    require(principal, role, job.project_id)
    return job


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=AUTH_ERRORS)
def read_job(job_id: Id, session: SessionDep, principal: PrincipalDep) -> JobPublic:
    """A job's state, progress (done/total), timings, result and error."""
    return job_public(_job_for(session, principal, job_id, "viewer"))


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic, responses=errors(401, 403, 404, 409, 422))
def cancel_job(job_id: Id, session: SessionDep, principal: PrincipalDep, runner: RunnerDep) -> JobPublic:
    """Cancel a job: a queued one at once, a running one at its next check (it then stores nothing)."""
    job = _job_for(session, principal, job_id, "admin")
    if job.state not in ("queued", "running"):
        raise ApiError(409, "job_finished", f"job {job_id} is {job.state}; only queued or running jobs can be cancelled")
    request_cancel(session, job_id)
    session.commit()
    runner.cancel(job_id)
    session.refresh(job)
    return job_public(job)


@router.post("/jobs/{job_id}/retry", response_model=JobPublic, responses=errors(401, 403, 404, 409, 422))
def retry(job_id: Id, session: SessionDep, principal: PrincipalDep, runner: RunnerDep) -> JobPublic:
    """Queue a failed, cancelled or interrupted job again with the same parameters."""
    job = _job_for(session, principal, job_id, "admin")
    if not retry_job(session, job_id):
        raise ApiError(409, "not_retryable", f"job {job_id} is {job.state}; only failed, cancelled or interrupted jobs can be retried")
    session.commit()
    runner.submit(job_id)
    session.refresh(job)
    return job_public(job)


@router.get("/projects/{project_id}/jobs", response_model=list[JobPublic], responses=AUTH_ERRORS)
def list_jobs(
    project_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    state: str | None = Query(default=None, max_length=20),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[JobPublic]:
    """The project's jobs, newest first."""
    project_for(session, principal, project_id, "viewer")
    return [job_public(j) for j in project_jobs(session, project_id, limit, state)]
