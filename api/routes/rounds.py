"""Retrain-and-reselect rounds: start one (a job), list them with metrics and timings."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import PrincipalDep, RunnerDep, SessionDep, SettingsDep
from api.errors import ApiError
from api.jobs import job_public, start_job
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.schemas import JobPublic
from api.schemas_train import RoundCreate, RoundPublic
from curator.train.store import project_rounds

router = APIRouter(tags=["rounds"])


@router.post(
    "/projects/{project_id}/rounds", status_code=202, response_model=JobPublic,
    responses=errors(400, 401, 403, 404, 422, 429, 507),
)
def create_round(
    project_id: Id,
    body: RoundCreate,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> JobPublic:
    """Start a round job: propagate from every human label, train the proxy, evaluate it on held-out
    labelled frames, score every frame, write dense labels with provenance, select the next batch
    across all videos and queue it. The job's result names the round, its metrics and the picks."""
    from curator.jobs.handlers import propagator_names
    from curator_selectors import list_selectors

    project_for(session, principal, project_id, "admin")
    if body.strategy not in list_selectors():
        raise ApiError(422, "unknown_strategy", f"unknown strategy {body.strategy!r}; valid: {', '.join(list_selectors())}")
    if body.propagator is not None and body.propagator not in propagator_names():
        names = ", ".join(propagator_names())
        raise ApiError(422, "unknown_propagator", f"unknown propagator {body.propagator!r}; valid: {names}")
    params = body.model_dump()
    job = start_job(session, runner, "round", project_id, params, principal.key_id, max_queued=settings.max_queued_jobs)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)


@router.get("/projects/{project_id}/rounds", response_model=list[RoundPublic], responses=AUTH_ERRORS)
def list_rounds(project_id: Id, session: SessionDep, principal: PrincipalDep) -> list[RoundPublic]:
    """The project's rounds, oldest first, with the proxy's metrics and the seconds of each step."""
    project_for(session, principal, project_id, "viewer")
    return [
        RoundPublic(
            id=r.id, project_id=r.project_id, number=r.number, state=r.state, job_id=r.job_id,
            selection_id=r.selection_id, params=r.params or {}, metrics=r.metrics or {}, timings=r.timings or {},
            checkpoint=r.checkpoint, created_at=r.created_at, finished_at=r.finished_at,
        )
        for r in project_rounds(session, project_id)
    ]
