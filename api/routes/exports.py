"""Exports: COCO, DAVIS (zip), YouTube-VIS, Datumaro (zip, tracks; for CVAT) and Label Studio, streamed."""

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
    format: Literal["coco", "davis", "ytvis", "datumaro", "labelstudio"] = Query(
        default="coco", description="Output format."
    ),
    include: Literal["human", "all"] = Query(
        default="human", description="``human`` masks only, or ``all`` (best source per frame)."
    ),
    images: bool | None = Query(
        default=None,
        description="With the images, as a zip in the tool's layout (the default, except for ``labelstudio``, "
        "whose default is its tasks JSON); false gives ``coco``, ``ytvis`` and ``labelstudio`` as JSON alone.",
    ),
) -> StreamingResponse:
    """Stream the project's labelled frames: COCO instance segmentation with RLE masks, a DAVIS zip
    (with Pascal VOC segmentation folders and ``labelmap.txt``), YouTube-VIS, a Datumaro zip (one
    track per object, CVAT-ready) or Label Studio tasks (brush masks; the queue's frames too). Only
    labelled (and, for Label Studio, queued) frames are exported."""
    project = project_for(session, principal, project_id, "admin")
    exporter = EXPORTERS[format]
    media_type, ext = exporter.media(images)
    name = f"{project.name.replace(' ', '_')}-{format}-{include}.{ext}"
    return StreamingResponse(
        exporter.generate(workspace, project_id, include, images),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
