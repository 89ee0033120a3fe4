"""Helpers shared by the routers: error response docs and project look-ups with role checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.auth import Principal
from api.deps import require
from api.errors import not_found
from api.schemas import ErrorPublic
from curator.store.models import Project

MAX_ID = 2**62
#: A row id in a path: positive and within SQLite's 64-bit integers (bigger ones get 422, not a crash).
Id = Annotated[int, PathParam(ge=1, le=MAX_ID, examples=[1])]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses, all with the :class:`ErrorPublic` body."""
    text = {
        400: "Bad request",
        401: "Missing, unknown or revoked API key",
        403: "The key's role or project does not allow this",
        404: "Unknown id",
        409: "Conflicts with the current state",
        413: "Upload larger than the configured limit",
        415: "Not a video",
        422: "Invalid body or parameters",
        429: "The project has `max_queued_jobs` queued jobs already (`too_many_jobs`)",
        507: "The server's disk is full; nothing was stored (`insufficient_storage`)",
    }
    return {s: {"model": ErrorPublic, "description": text.get(s, "Error")} for s in statuses}


AUTH_ERRORS = errors(401, 403, 404, 422)


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as a JSON response, serialized in the calling (worker) thread.

    For the queue's hot routes: FastAPI validates and serializes a returned model against the
    route's ``response_model`` in another worker-thread hop, which costs a claim or a submission
    more than its SQL does; a returned ``Response`` is sent as it is. The route keeps its
    ``response_model`` for the OpenAPI document, so ``model`` must be an instance of it.
    """
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def project_for(session: Session, principal: Principal, project_id: int, role: str) -> Project:
    """The project ``project_id`` if the caller holds ``role`` on it.

    A key scoped to another project gets 404 rather than 403, so ids of other projects do not leak.
    """
    if principal.project_id is not None and principal.project_id != project_id:
        raise not_found("project", project_id)
    project = session.get(Project, project_id)
    if project is None:
        raise not_found("project", project_id)
    require(principal, role, project_id)
    return project
