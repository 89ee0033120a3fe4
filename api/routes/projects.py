"""Projects: create, list, get, delete (with confirmation; files go too)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from sqlalchemy.exc import IntegrityError

from api.deps import PrincipalDep, RunnerDep, SessionDep, WorkspaceDep, require
from api.errors import ApiError
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.schemas import ProjectCreate, ProjectPublic
from curator.jobs import request_cancel
from curator.jobs.store import active_job_ids
from curator.store import repo
from curator.store.models import Project

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=201, response_model=ProjectPublic, responses=errors(400, 401, 403, 409, 422, 507))
def create_project(body: ProjectCreate, session: SessionDep, principal: PrincipalDep) -> ProjectPublic:
    """Create a project (needs a global admin key)."""
    require(principal, "admin", None)
    project = Project(name=body.name)
    session.add(project)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, "name_taken", f"a project named {body.name!r} exists already") from None
    return ProjectPublic(id=project.id, name=project.name, created_at=project.created_at)


@router.get("", response_model=list[ProjectPublic], responses=errors(401))
def list_projects(session: SessionDep, principal: PrincipalDep) -> list[ProjectPublic]:
    """Projects the caller's key can see, with their video and frame counts."""
    ids = None if principal.project_id is None else [principal.project_id]
    return [
        ProjectPublic(id=p.id, name=p.name, created_at=p.created_at, videos=v, frames=f)
        for p, v, f in repo.project_counts(session, ids)
    ]


@router.get("/{project_id}", response_model=ProjectPublic, responses=AUTH_ERRORS)
def get_project(project_id: Id, session: SessionDep, principal: PrincipalDep) -> ProjectPublic:
    """One project with its video and frame counts."""
    project_for(session, principal, project_id, "viewer")
    p, v, f = repo.project_counts(session, [project_id])[0]
    return ProjectPublic(id=p.id, name=p.name, created_at=p.created_at, videos=v, frames=f)


@router.delete("/{project_id}", status_code=204, responses=errors(401, 403, 404, 409, 422))
def delete_project(
    project_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    workspace: WorkspaceDep,
    runner: RunnerDep,
    confirm: str = Query(
        default="", max_length=200, description="Must repeat the project's name: deletion removes every file."
    ),
) -> Response:
    """Delete a project, its rows and its files. ``confirm`` must equal the project's name."""
    project = project_for(session, principal, project_id, "admin")
    if confirm != project.name:
        raise ApiError(
            409, "confirmation_required",
            f"deleting project {project.name!r} removes its videos, frames, labels and files; "
            f"repeat its name as ?confirm={project.name}",
        )
    for job_id in active_job_ids(session, project_id):
        request_cancel(session, job_id)
        runner.cancel(job_id)
    repo.delete_project(session, project_id)
    session.commit()
    workspace.blobs.remove(f"projects/{project_id}")
    return Response(status_code=204)
