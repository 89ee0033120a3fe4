"""Selections (a job whose picks become queue tasks) and embedding jobs."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import PrincipalDep, RunnerDep, SessionDep, SettingsDep
from api.errors import ApiError, not_found
from api.jobs import job_public, start_job
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.schemas import EmbedRequest, JobPublic, PickPublic, SelectionCreate, SelectionPublic
from curator.store import repo

router = APIRouter(tags=["selections"])


@router.post(
    "/projects/{project_id}/selections", status_code=202, response_model=JobPublic,
    responses=errors(400, 401, 403, 404, 422, 429, 507),
)
def create_selection(
    project_id: Id,
    body: SelectionCreate,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> JobPublic:
    """Start a selection job; when it succeeds its result names the selection and its picks,
    and every pick is a task in the project's queue."""
    from curator.selection import list_selectors

    project_for(session, principal, project_id, "admin")
    strategy = body.strategy or settings.selector
    names = list_selectors(settings.selector_package)
    if strategy not in names:
        raise ApiError(422, "unknown_strategy", f"unknown strategy {strategy!r}; valid: {', '.join(names)}")
    params = {
        "strategy": strategy, "budget": body.budget, "params": body.params,
        "seed": settings.seed if body.seed is None else body.seed, "backbone": body.backbone,
    }
    job = start_job(session, runner, "select", project_id, params, principal.key_id, max_queued=settings.max_queued_jobs)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)


@router.get("/selections/{selection_id}", response_model=SelectionPublic, responses=AUTH_ERRORS)
def read_selection(selection_id: Id, session: SessionDep, principal: PrincipalDep) -> SelectionPublic:
    """A selection's picks in order, each with the reason it was picked and its task."""
    found = repo.selection_picks(session, selection_id)
    if found is None:
        raise not_found("selection", selection_id)
    selection, rows = found
    if principal.project_id is not None and principal.project_id != selection.project_id:
        raise not_found("selection", selection_id)
    project_for(session, principal, selection.project_id, "viewer")
    return SelectionPublic(
        id=selection.id, project_id=selection.project_id, strategy=selection.strategy, budget=selection.budget,
        params=selection.params or {}, seed=selection.seed, backbone=selection.backbone,
        created_at=selection.created_at,
        picks=[
            PickPublic(
                frame_id=item.frame_id, rank=item.rank, utility=item.utility, reason=item.reason,
                video_id=frame.video_id, frame_index=frame.frame_index, timestamp=frame.timestamp, task_id=task_id,
            )
            for item, frame, task_id in rows
        ],
    )


@router.post(
    "/projects/{project_id}/embed", status_code=202, response_model=JobPublic,
    responses=errors(400, 401, 403, 404, 422, 429, 507),
)
def embed(
    project_id: Id,
    body: EmbedRequest,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> JobPublic:
    """Start a job embedding the project's frames that lack an embedding under ``backbone``."""
    from curator.embed import list_backbones

    project_for(session, principal, project_id, "admin")
    backbone = body.backbone or settings.backbone
    if backbone != "auto" and backbone not in list_backbones():
        raise ApiError(422, "unknown_backbone", f"unknown backbone {backbone!r}; valid: auto, {', '.join(list_backbones())}")
    params: dict[str, object] = {"backbone": backbone}
    if body.part_frames is not None:
        params["part_frames"] = body.part_frames
    job = start_job(
        session, runner, "embed", project_id, params, principal.key_id,
        max_queued=settings.max_queued_jobs,
    )
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)
