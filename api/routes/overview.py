"""The project view's reads (overview, a video's timeline, the embedding map, the rounds) and queueing
frames by id. Each route checks the caller and answers what :class:`curator.Project` reads."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from api.auth import Principal
from api.deps import PrincipalDep, RunnerDep, SessionDep, SettingsDep, WorkspaceDep, WriteLockDep
from api.errors import ApiError, not_found
from api.jobs import start_job
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.schemas_overview import (
    EmbeddingMapPublic,
    OverviewPublic,
    QueuedFrame,
    QueueFramesPublic,
    QueueFramesRequest,
    RoundHistoryPublic,
    TimelinePublic,
)
from curator.jobs.admission import TooManyJobs
from curator.project import Project
from curator.store.repo import NotFoundError
from curator.workspace import Workspace

router = APIRouter(tags=["project view"])


def _project(session: Session, principal: Principal, workspace: Workspace, project_id: int, role: str) -> Project:
    """The façade of a project the caller holds ``role`` on (the request's session is closed: the
    engine reads through its own)."""
    project_for(session, principal, project_id, role)
    session.close()
    return Project.by_id(workspace, project_id)


@router.get("/projects/{project_id}/overview", response_model=OverviewPublic, responses=AUTH_ERRORS)
def overview(project_id: Id, session: SessionDep, principal: PrincipalDep, workspace: WorkspaceDep) -> OverviewPublic:
    """The project at a glance: every video with its shots, its picks (reason, utility, task state) and
    the times of its labelled frames; the selections (and the round that made each); the queue by
    state and per annotator key. Jobs are `GET /projects/{id}/jobs`."""
    return OverviewPublic.model_validate(_project(session, principal, workspace, project_id, "viewer").overview())


@router.get(
    "/projects/{project_id}/videos/{video_id}/timeline", response_model=TimelinePublic, responses=AUTH_ERRORS
)
def video_timeline(
    project_id: Id, video_id: Id, session: SessionDep, principal: PrincipalDep, workspace: WorkspaceDep
) -> TimelinePublic:
    """A video frame by frame, as columns: each frame's best mask source (human, propagated,
    predicted, rejected) and its lowest object confidence (the confidence curve), objects and task
    state; the keyframes (human masks), shots and picks. 404 for a video of another project."""
    project = _project(session, principal, workspace, project_id, "viewer")
    try:
        return TimelinePublic.model_validate(project.video_timeline(video_id))
    except NotFoundError:
        raise not_found("video", video_id) from None


@router.get(
    "/projects/{project_id}/embedding-map", response_model=EmbeddingMapPublic,
    responses={**AUTH_ERRORS, **errors(409)},
)
def embedding_map(
    project_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    workspace: WorkspaceDep,
    backbone: str | None = Query(
        default=None, max_length=100, description="Embeddings to project (default: the ones selections use)."
    ),
) -> EmbeddingMapPublic:
    """A 2-D PCA projection of the project's frame embeddings, one point per embedded frame, with its
    video, shot and whether it is labelled, picked or queued. The projection is computed once per
    state of the embeddings and cached (`cached`, `version`); a project without embeddings answers an
    empty map with the `reason`. 409 `not_embedded` for a `backbone` the project has no embeddings under."""
    project = _project(session, principal, workspace, project_id, "viewer")
    try:
        return EmbeddingMapPublic.model_validate(project.embedding_map(backbone))
    except LookupError as exc:
        raise ApiError(409, "not_embedded", str(exc)) from None


@router.get("/projects/{project_id}/rounds/history", response_model=RoundHistoryPublic, responses=AUTH_ERRORS)
def round_history(
    project_id: Id, session: SessionDep, principal: PrincipalDep, workspace: WorkspaceDep
) -> RoundHistoryPublic:
    """Every round, oldest first: its state, the batch it queued, its proxy J, F and J&F on held-out
    human frames, or in `note` why it has none (too few human frames for a holdout, still running,
    failed); `series` has the metrics aligned by round for a plot."""
    return RoundHistoryPublic.model_validate(
        _project(session, principal, workspace, project_id, "viewer").round_history()
    )


@router.post(
    "/projects/{project_id}/queue/frames", response_model=QueueFramesPublic,
    responses=errors(400, 401, 403, 404, 422, 507),
)
def queue_frames(
    project_id: Id,
    body: QueueFramesRequest,
    session: SessionDep,
    principal: PrincipalDep,
    workspace: WorkspaceDep,
    settings: SettingsDep,
    runner: RunnerDep,
    write_lock: WriteLockDep,
) -> QueueFramesPublic:
    """Queue frames for labelling by id (admin): a frame without a task gets an `open` one with
    `reason`; a frame with a task keeps it, whatever its state (a done task is not reopened: see
    `POST /tasks/{id}/reopen`). 422 `unknown_frames` when any id is not a frame of the project
    (nothing is queued). With the `preannotate` setting on, a `preannotate` job of the new tasks is
    queued (`preannotate_job`; none while the project has `max_queued_jobs` queued)."""
    project = _project(session, principal, workspace, project_id, "admin")
    try:
        with write_lock:
            result = project.queue_frames(body.frame_ids, body.reason)
    except NotFoundError as exc:
        raise ApiError(422, "unknown_frames", str(exc)) from None
    job_id = None
    if result["created"] and settings.preannotate:
        params = {"task_ids": result["created"], "propagator": None}
        try:
            with workspace.db.session() as jobs_session:
                job_id = start_job(
                    jobs_session, runner, "preannotate", project_id, params, principal.key_id,
                    max_queued=settings.max_queued_jobs,
                ).id
        except TooManyJobs:
            job_id = None  # the tasks are queued; their pre-annotation can be asked for later
    existing = result["existing"]
    return QueueFramesPublic(
        created=len(result["created"]),
        existing=len(existing),
        tasks=[
            QueuedFrame(frame_id=f, task_id=t, state=existing.get(f, "open"), created=f not in existing)
            for f, t in result["tasks"].items()
        ],
        preannotate_job=job_id,
    )
