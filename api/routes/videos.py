"""Videos: streamed uploads and server-side path registration (both answer 202 with an ingest job)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep, RunnerDep, SessionDep, SettingsDep, WorkspaceDep
from api.errors import ApiError
from api.jobs import job_public, start_job
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.schemas import JobPublic, PathRegister, VideoPublic
from api.uploads import check_video, display_name, receive_upload
from curator.jobs.admission import check_capacity
from curator.store import repo

router = APIRouter(prefix="/projects/{project_id}/videos", tags=["videos"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The video."}},
                    "required": ["file"],
                }
            }
        },
    }
}


def sampling_params(fps: float | None, stride: int | None, part_frames: int | None = None) -> dict[str, float | int]:
    """The ingest job's per-video sampling parameters and part size (only those given: the job's
    identity does not change for an upload without them)."""
    return {k: v for k, v in (("fps", fps), ("stride", stride), ("part_frames", part_frames)) if v is not None}


#: How ``part_frames`` is described to clients (the upload's query and the register body).
PART_FRAMES_DOC = (
    "A file of more than this many decoded frames is decoded in parts cut at its keyframes (Ray tasks under "
    "`curator worker --ray`) and stored as one video; default 4096."
)


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    openapi_extra=UPLOAD_BODY,
    responses=errors(400, 401, 403, 404, 413, 415, 422, 429, 507),
)
async def upload_video(
    project_id: Id,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    workspace: WorkspaceDep,
    settings: SettingsDep,
    runner: RunnerDep,
    fps: float | None = Query(
        default=None, ge=0, le=1000, allow_inf_nan=False,
        description="Candidate frames per second for this video (0: every `stride`-th frame); default the "
        "server's `sample_fps`.",
    ),
    stride: int | None = Query(
        default=None, ge=1, le=100_000, description="Keep every n-th decoded frame; default the server's `sample_stride`."
    ),
    part_frames: int | None = Query(default=None, ge=1, le=100_000_000, description=PART_FRAMES_DOC),
) -> JobPublic:
    """Upload a video (multipart ``file``); it is streamed to disk, checked by decoding, then ingested.

    The answer is 202 with the ingest job; poll ``GET /jobs/{id}``. ``?fps=`` and ``?stride=`` set
    this video's sampling in place of the server's ``sample_fps`` and ``sample_stride`` (422 out of
    range, before the body is read); ``?part_frames=`` the size of the parts a long file is decoded in. A file that is empty, larger than ``upload_max_bytes`` or not a
    decodable video is refused with 4xx and nothing is stored; so is any upload while the project
    has ``max_queued_jobs`` queued jobs (429, checked before the body is read), or when the disk
    fills up (507). A file the project holds already is not ingested again, whatever its options.
    """
    await run_in_threadpool(project_for, session, principal, project_id, "admin")
    await run_in_threadpool(check_capacity, session, project_id, settings.max_queued_jobs)
    relative = f"projects/{project_id}/uploads/{uuid.uuid4().hex}.upload"
    dest = workspace.blobs.path(relative)
    dest.parent.mkdir(parents=True, exist_ok=True)
    name, size = await receive_upload(request, dest, settings.upload_max_bytes)
    params = {
        "path": relative, "upload": True, "filename": name, "size_bytes": size, "backbone": settings.backbone,
        **sampling_params(fps, stride, part_frames),
    }
    try:
        await run_in_threadpool(check_video, dest, name)
        job = await run_in_threadpool(
            start_job, session, runner, "ingest", project_id, params, principal.key_id,
            max_queued=settings.max_queued_jobs,
        )
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)


@router.post(
    "/register", status_code=202, response_model=JobPublic, responses=errors(400, 401, 403, 404, 415, 422, 429, 507)
)
def register_video(
    project_id: Id,
    body: PathRegister,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> JobPublic:
    """Ingest a video already on the server; its real path must lie under one of ``path_roots``.
    ``fps`` and ``stride`` set this video's sampling in place of the server's settings."""
    project_for(session, principal, project_id, "admin")
    if not settings.path_roots:
        raise ApiError(403, "paths_disabled", "this server registers no server-side paths (path_roots is empty)")
    if "\x00" in body.path:
        raise ApiError(422, "invalid_path", "the path contains a NUL byte")
    real = Path(os.path.realpath(body.path))
    roots = [Path(os.path.realpath(r)) for r in settings.path_roots]
    if not any(real.is_relative_to(root) for root in roots):
        raise ApiError(403, "path_not_allowed", "the path is not under any configured path root")
    if not real.is_file():
        raise ApiError(404, "not_found", "no such file under the path roots")
    name = display_name(real.name)
    check_video(real, name)
    params = {
        "path": str(real), "upload": False, "filename": name, "backbone": settings.backbone,
        **sampling_params(body.fps, body.stride, body.part_frames),
    }
    job = start_job(session, runner, "ingest", project_id, params, principal.key_id, max_queued=settings.max_queued_jobs)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)


@router.get("", response_model=list[VideoPublic], responses=AUTH_ERRORS)
def list_videos(project_id: Id, session: SessionDep, principal: PrincipalDep) -> list[VideoPublic]:
    """The project's videos."""
    project_for(session, principal, project_id, "viewer")
    return [
        VideoPublic(
            id=v.id, filename=v.filename, codec=v.codec, fps=v.fps, width=v.width, height=v.height,
            duration=v.duration, frames=n, created_at=v.created_at,
        )
        for v, n in repo.project_videos(session, project_id)
    ]
