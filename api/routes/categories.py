"""The label schema: a project's categories and the category of each object id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from sqlalchemy.exc import IntegrityError

from api.deps import PrincipalDep, SessionDep, WriteLockDep
from api.errors import ApiError
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.schemas import CategoryCreate, CategoryPublic, ObjectCategoryUpdate, ObjectPublic
from curator.store import repo

router = APIRouter(tags=["categories"])

#: An object id in a path: 1..255, as in masks.
ObjectId = Annotated[int, PathParam(ge=1, le=255, examples=[1])]


@router.get("/projects/{project_id}/categories", response_model=list[CategoryPublic], responses=AUTH_ERRORS)
def list_categories(project_id: Id, session: SessionDep, principal: PrincipalDep) -> list[CategoryPublic]:
    """The project's categories by id, each with the object ids that have it. A project without
    categories exports every mask as the one category ``object``."""
    project_for(session, principal, project_id, "viewer")
    objects = repo.object_categories(session, project_id)
    return [
        CategoryPublic(
            id=c.id, project_id=project_id, name=c.name, color=c.color,
            objects=sorted(o for o, cat in objects.items() if cat == c.id),
        )
        for c in repo.project_categories(session, project_id)
    ]


@router.post(
    "/projects/{project_id}/categories", status_code=201, response_model=CategoryPublic,
    responses=errors(400, 401, 403, 404, 409, 422, 507),
)
def create_category(
    project_id: Id, body: CategoryCreate, session: SessionDep, principal: PrincipalDep, write_lock: WriteLockDep
) -> CategoryPublic:
    """Add a category (admin). 409 ``name_taken`` if the project has one of that name; 422 for a
    colour that is not ``#rrggbb``."""
    project_for(session, principal, project_id, "admin")
    try:
        with write_lock:
            row = repo.add_category(session, project_id, body.name, body.color)
            session.commit()
    except repo.DuplicateNameError as exc:
        session.rollback()
        raise ApiError(409, "name_taken", str(exc)) from None
    except IntegrityError:  # the same name added by another request at the same moment
        session.rollback()
        raise ApiError(409, "name_taken", f"project {project_id} has a category named {body.name!r} already") from None
    except ValueError as exc:
        session.rollback()
        raise ApiError(422, "invalid_category", str(exc)) from None
    return CategoryPublic(id=row.id, project_id=project_id, name=row.name, color=row.color, objects=[])


@router.get("/projects/{project_id}/objects", response_model=list[ObjectPublic], responses=AUTH_ERRORS)
def list_objects(project_id: Id, session: SessionDep, principal: PrincipalDep) -> list[ObjectPublic]:
    """The object ids that have a category, with it."""
    project_for(session, principal, project_id, "viewer")
    categories = {c.id: c for c in repo.project_categories(session, project_id)}
    return [
        ObjectPublic(object_id=o, category_id=c, category=categories[c].name, color=categories[c].color)
        for o, c in sorted(repo.object_categories(session, project_id).items())
    ]


@router.put(
    "/projects/{project_id}/objects/{object_id}", response_model=ObjectPublic,
    responses=errors(400, 401, 403, 404, 422, 507),
)
def set_object_category(
    project_id: Id,
    object_id: ObjectId,
    body: ObjectCategoryUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    write_lock: WriteLockDep,
) -> ObjectPublic:
    """Give an object id (the same object on every frame of a video) a category of the project
    (annotator: the person labelling the object names it); ``category_id: null`` removes it. 404 for
    a category of another project."""
    project_for(session, principal, project_id, "annotator")
    category = None
    if body.category_id is not None:
        category = repo.category_of_project(session, project_id, body.category_id)
        if category is None:
            raise ApiError(404, "not_found", f"no category with id {body.category_id} in project {project_id}")
    with write_lock:
        repo.set_object_category(session, project_id, object_id, body.category_id)
        session.commit()
    return ObjectPublic(
        object_id=object_id, category_id=body.category_id,
        category=category.name if category else None, color=category.color if category else None,
    )
