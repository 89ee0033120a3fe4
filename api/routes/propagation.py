"""Propagation: carry a video's human masks to the frames between its keyframes (a job)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import PrincipalDep, RunnerDep, SessionDep, SettingsDep
from api.errors import ApiError, not_found
from api.jobs import job_public, start_job
from api.routes.common import Id, errors, project_for
from api.schemas import JobPublic, PropagateRequest
from curator.store import repo
from curator.store.models import Video

router = APIRouter(tags=["propagation"])


@router.post(
    "/projects/{project_id}/propagate", status_code=202, response_model=JobPublic,
    responses=errors(400, 401, 403, 404, 409, 422, 429, 507),
)
def propagate(
    project_id: Id,
    body: PropagateRequest,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> JobPublic:
    """Start a propagation job (admin) for one video, or, without ``video_id``, for every video with
    human masks (409 ``no_keyframes`` when there is none). Results are stored as ``propagated`` masks
    with confidences and appear as the pre-annotation of those frames' tasks. The same propagation
    already queued is returned instead of queuing it twice."""
    project_for(session, principal, project_id, "admin")
    if body.video_id is not None:
        video = session.get(Video, body.video_id)
        if video is None or video.project_id != project_id:
            raise not_found("video", body.video_id)
    elif not repo.videos_with_human_masks(session, project_id):
        raise ApiError(409, "no_keyframes", f"project {project_id} has no human masks to propagate from")
    if body.propagator is not None:
        from curator.jobs.handlers import propagator_names

        names = ["auto", *propagator_names()]
        if body.propagator not in names:
            raise ApiError(422, "unknown_propagator", f"unknown propagator {body.propagator!r}; valid: {', '.join(names)}")
    params = {"video_id": body.video_id, "propagator": body.propagator, "scope": body.scope}
    if body.part_frames is not None:  # absent otherwise: the same propagation queued before is found
        params["part_frames"] = body.part_frames
    job = start_job(
        session, runner, "propagate", project_id, params, principal.key_id, max_queued=settings.max_queued_jobs
    )
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)
