"""Exports: COCO, DAVIS (zip of PNG folders) and YouTube-VIS, streamed."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import PrincipalDep, SessionDep, WorkspaceDep
from api.routes.common import AUTH_ERRORS, Id, project_for
from curator.export import EXPORTERS

router = APIRouter(tags=["exports"])


@router.get(
    "/projects/{project_id}/export",
    response_class=StreamingResponse,
    responses={
        **AUTH_ERRORS,
        200: {
            "description": "The dataset, streamed.",
            "content": {"application/json": {}, "application/zip": {}},
        },
    },
)
def export(
    project_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    workspace: WorkspaceDep,
    format: Literal["coco", "davis", "ytvis"] = Query(default="coco", description="Output format."),
    include: Literal["human", "all"] = Query(
        default="human", description="``human`` masks only, or ``all`` (best source per frame)."
    ),
) -> StreamingResponse:
    """Stream the project's labelled frames: COCO instance segmentation JSON with RLE masks, a DAVIS
    zip of JPEG and indexed-PNG folders, or YouTube-VIS JSON. Only labelled frames are exported."""
    project = project_for(session, principal, project_id, "admin")
    generate, media_type, ext = EXPORTERS[format]
    name = f"{project.name.replace(' ', '_')}-{format}-{include}.{ext}"
    return StreamingResponse(
        generate(workspace, project_id, include),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
