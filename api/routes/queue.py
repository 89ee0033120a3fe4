"""The labelling queue: claim (lease) tasks, read one with its pre-annotation, submit, release, reopen
a done task, reject a submission back into the queue, and pre-annotate queued tasks (a job)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from api.auth import Principal
from api.deps import (
    PrincipalDep,
    RunnerDep,
    SessionDep,
    SettingsDep,
    WriteLockDep,
    require,
    runner_of,
    settings_of,
    write_lock_of,
)
from api.errors import ApiError, not_found
from api.jobs import job_public, start_job
from api.routes.common import AUTH_ERRORS, Id, errors, model_response, project_for
from api.schemas import (
    ClaimPublic,
    ClaimRequest,
    FrameRef,
    JobPublic,
    MaskPublic,
    PreannotateRequest,
    QueuePublic,
    RejectRequest,
    SubmitPublic,
    SubmitRequest,
    TaskDetail,
    TaskPublic,
)
from curator.jobs import find_active_job
from curator.jobs.admission import check_capacity
from curator.labels.masks import check_masks, png_masks
from curator.store import repo
from curator.store.models import Frame, Task

router = APIRouter(tags=["queue"])


def frame_ref(frame: Frame) -> FrameRef:
    """The API view of a frame."""
    return FrameRef(
        id=frame.id, video_id=frame.video_id, frame_index=frame.frame_index, timestamp=frame.timestamp,
        width=frame.width, height=frame.height, image_url=f"/frames/{frame.id}/image",
        thumb_url=f"/frames/{frame.id}/image?size=thumb",
    )


def _task_for(session: Session, principal: Principal, task_id: int, role: str) -> tuple[Task, Frame]:
    found = repo.task_with_frame(session, task_id)
    if found is None or (principal.project_id is not None and found[0].project_id != principal.project_id):
        raise not_found("task", task_id)
    require(principal, role, found[0].project_id)  # the task's foreign key vouches for the project
    return found


def _target_for(session: Session, principal: Principal, task_id: int, role: str) -> repo.TaskTarget:
    """What a submission needs of task ``task_id`` (see :func:`_task_for`; no ORM objects loaded)."""
    found = repo.task_target(session, task_id)
    if found is None or (principal.project_id is not None and found.project_id != principal.project_id):
        raise not_found("task", task_id)
    require(principal, role, found.project_id)
    return found


@router.post(
    "/projects/{project_id}/queue/claim", response_model=ClaimPublic,
    responses=errors(400, 401, 403, 404, 422, 507),
)
def claim(project_id: Id, body: ClaimRequest, session: SessionDep, principal: PrincipalDep, request: Request) -> Response:
    """Lease up to ``limit`` open tasks to the caller for ``lease_seconds``; none is ever leased to two
    callers at once. Expired leases go back to the pool first. Fewer (or no) tasks when the queue runs dry."""
    # claim and submit are the hot path: they read the app's services off the request rather than
    # have FastAPI solve a dependency for each (see api.deps)
    settings, write_lock = settings_of(request), write_lock_of(request)
    if principal.project_id is not None and principal.project_id != project_id:
        raise not_found("project", project_id)
    require(principal, "annotator", project_id)
    if body.limit > settings.claim_max:
        raise ApiError(422, "limit_too_large", f"limit is at most {settings.claim_max}, got {body.limit}")
    with write_lock:
        leases = repo.claim_tasks(session, project_id, principal.key_id, body.limit, settings.lease_seconds)
        session.commit()
    if not leases:  # only an empty claim needs to tell an unknown project from an empty queue
        project_for(session, principal, project_id, "annotator")
    return model_response(ClaimPublic(
        tasks=[
            TaskPublic(
                id=lease.id, project_id=project_id, frame_id=lease.frame_id, video_id=lease.video_id,
                frame_index=lease.frame_index, state="leased", reason=lease.reason,
                lease_expires_at=lease.lease_expires_at, image_url=f"/frames/{lease.frame_id}/image",
            )
            for lease in leases
        ],
        lease_seconds=settings.lease_seconds,
    ))


@router.get("/projects/{project_id}/queue", response_model=QueuePublic, responses=AUTH_ERRORS)
def queue_counts(project_id: Id, session: SessionDep, principal: PrincipalDep) -> QueuePublic:
    """Task counts by state."""
    project_for(session, principal, project_id, "viewer")
    return QueuePublic(**repo.queue_counts(session, project_id))


@router.get("/tasks/{task_id}", response_model=TaskDetail, responses=AUTH_ERRORS)
def read_task(
    task_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    neighbours: int = Query(default=2, ge=0, le=20, description="Stored frames to list on each side."),
) -> TaskDetail:
    """A task: its frame's image URL, neighbouring frames, the pre-annotation (COCO RLE with
    confidence: the frame's masks of the best source present, human for a reopened task, rejected
    for a rejected one, else propagated or predicted) and the last reviewer's note."""
    task, frame = _task_for(session, principal, task_id, "viewer")
    return _detail(session, task, frame, neighbours)


def _detail(session: Session, task: Task, frame: Frame, neighbours: int) -> TaskDetail:
    pre = repo.pre_annotation(session, frame.id)
    state = task.state
    if state == "leased" and (task.lease_expires_at or 0) < time.time():
        state = "open"
    return TaskDetail(
        id=task.id, project_id=task.project_id, frame_id=frame.id, video_id=frame.video_id,
        frame_index=frame.frame_index, state=state, reason=task.reason,
        lease_expires_at=task.lease_expires_at if state == "leased" else None,
        image_url=f"/frames/{frame.id}/image", frame=frame_ref(frame),
        neighbours=[frame_ref(f) for f in repo.neighbours(session, frame, neighbours)],
        pre_annotation=[
            MaskPublic(object_id=a.object_id, source=a.source, confidence=a.confidence, rle=a.rle) for a in pre
        ],
        review_note=task.review_note,
    )


def _lease_problem(session: Session, task_id: Id, owner: int) -> ApiError:
    session.rollback()
    task = session.get(Task, task_id)
    if task is None:
        return not_found("task", task_id)
    if task.state == "done":
        return ApiError(409, "task_done", f"task {task_id} has been submitted already")
    if task.state == "leased" and task.lease_owner == owner:
        return ApiError(409, "lease_expired", f"your lease on task {task_id} expired; claim it again")
    if task.state == "leased" and (task.lease_expires_at or 0) >= time.time():
        return ApiError(409, "lease_not_held", f"task {task_id} is leased to another annotator")
    return ApiError(409, "lease_not_held", f"you hold no lease on task {task_id}; claim it first")


@router.post(
    "/tasks/{task_id}/submit", response_model=SubmitPublic, responses=errors(400, 401, 403, 404, 409, 422, 429, 507)
)
def submit(task_id: Id, body: SubmitRequest, session: SessionDep, principal: PrincipalDep, request: Request) -> Response:
    """Submit the masks of a leased task (COCO RLE, or one indexed PNG). The masks must have the
    frame's size and distinct object ids 1..255; they are stored as ``human``. With ``propagate``,
    a propagation job over the frame's video is queued (or the one already queued is returned);
    when that needs a new job and the project has ``max_queued_jobs`` queued, the submission is
    refused whole with 429 and nothing is stored."""
    settings, runner, write_lock = settings_of(request), runner_of(request), write_lock_of(request)
    target = _target_for(session, principal, task_id, "annotator")
    if body.label_png is not None and body.masks:
        raise ApiError(422, "invalid_mask", "send either masks or label_png, not both")
    if body.label_png is not None:
        masks = png_masks(body.label_png, target.height, target.width)
    else:
        masks = check_masks([(m.object_id, m.rle.model_dump()) for m in body.masks], target.height, target.width)
    frame_id, video_id, project_id = target.frame_id, target.video_id, target.project_id
    wants_job = body.propagate and bool(masks)
    if wants_job and find_active_job(session, "propagate", project_id, video_id=video_id) is None:
        check_capacity(session, project_id, settings.max_queued_jobs)
    # the write is one short transaction: the conditional UPDATE takes the write lock first
    with write_lock:
        if not repo.finish_task(session, task_id, principal.key_id, time.time()):
            session.rollback()
            raise _lease_problem(session, task_id, principal.key_id)
        repo.store_human_masks(session, frame_id, masks)
        session.commit()
    job = None
    if wants_job:  # any propagation of the video still queued covers these masks: it reads them when it runs
        job = find_active_job(session, "propagate", project_id, video_id=video_id)
        if job is None:  # the masks are stored: no limit now (it was checked above)
            params = {"video_id": video_id, "propagator": None, "scope": "video"}
            job = start_job(session, runner, "propagate", project_id, params, principal.key_id)
    return model_response(SubmitPublic(
        task_id=task_id, frame_id=frame_id, masks=len(masks), propagate_job=job_public(job) if job else None
    ))


@router.post("/tasks/{task_id}/release", response_model=TaskPublic, responses=errors(401, 403, 404, 409, 422))
def release(task_id: Id, session: SessionDep, principal: PrincipalDep, write_lock: WriteLockDep) -> TaskPublic:
    """Give a leased task back to the pool (the lease holder, or an admin for any lease)."""
    task, frame = _task_for(session, principal, task_id, "annotator")
    owner = None if principal.allows("admin", task.project_id) else principal.key_id
    view = TaskPublic(
        id=task.id, project_id=task.project_id, frame_id=frame.id, video_id=frame.video_id,
        frame_index=frame.frame_index, state="open", reason=task.reason, lease_expires_at=None,
        image_url=f"/frames/{frame.id}/image",
    )
    with write_lock:
        released = repo.release_task(session, task_id, owner)
        session.commit()
    if not released:
        raise _lease_problem(session, task_id, principal.key_id)
    return view


def _not_done(task: Task) -> ApiError:
    return ApiError(409, "task_not_done", f"task {task.id} is {task.state}, not done: only a submission can go back")


@router.post("/tasks/{task_id}/reopen", response_model=TaskDetail, responses=errors(401, 403, 404, 409, 422))
def reopen(task_id: Id, session: SessionDep, principal: PrincipalDep, write_lock: WriteLockDep) -> TaskDetail:
    """Put a done task back in the queue (an admin, or the annotator who submitted it). It is ``open``
    again; its human masks stay the frame's label and are its pre-annotation until resubmitted.
    409 ``task_not_done`` for a task that is not done."""
    task, frame = _task_for(session, principal, task_id, "annotator")
    if not principal.allows("admin", task.project_id) and task.submitted_by != principal.key_id:
        raise ApiError(403, "forbidden", f"only an admin or the annotator who submitted task {task_id} may reopen it")
    if task.state != "done":
        raise _not_done(task)
    with write_lock:
        reopened = repo.reopen_task(session, task_id)
        session.commit()
    session.refresh(task)
    if not reopened:
        raise _not_done(task)
    return _detail(session, task, frame, 2)


@router.post("/tasks/{task_id}/reject", response_model=TaskDetail, responses=errors(400, 401, 403, 404, 409, 422))
def reject(
    task_id: Id, body: RejectRequest, session: SessionDep, principal: PrincipalDep, write_lock: WriteLockDep
) -> TaskDetail:
    """Reject a submission back into the queue with a note (admin): the task is ``open`` with
    ``review_note``; the frame's human masks become ``rejected`` (not exported, propagated or trained
    on) and are the task's pre-annotation until resubmitted. 409 ``task_not_done`` for a task that
    is not done."""
    task, frame = _task_for(session, principal, task_id, "admin")
    if task.state != "done":
        raise _not_done(task)
    with write_lock:
        rejected = repo.reject_task(session, task_id, body.note)
        session.commit()
    session.refresh(task)
    if not rejected:
        raise _not_done(task)
    return _detail(session, task, frame, 2)


@router.post(
    "/projects/{project_id}/preannotate", status_code=202, response_model=JobPublic,
    responses=errors(400, 401, 403, 404, 422, 429, 507),
)
def preannotate(
    project_id: Id,
    body: PreannotateRequest,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    runner: RunnerDep,
) -> JobPublic:
    """Start a ``preannotate`` job (admin): queued tasks (``task_ids``, or every open or leased one)
    without a pre-annotation get masks propagated from their video's human keyframes. Selections
    and rounds queue one by themselves for the tasks they queue."""
    from curator.jobs.handlers import propagator_names

    project_for(session, principal, project_id, "admin")
    if body.propagator is not None and body.propagator not in ("auto", *propagator_names()):
        names = ", ".join(("auto", *propagator_names()))
        raise ApiError(422, "unknown_propagator", f"unknown propagator {body.propagator!r}; valid: {names}")
    params = {"task_ids": None if body.task_ids is None else sorted(set(body.task_ids)), "propagator": body.propagator}
    job = start_job(session, runner, "preannotate", project_id, params, principal.key_id, max_queued=settings.max_queued_jobs)
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_public(job)
