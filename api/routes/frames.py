"""Frames: the stored JPEG (or a thumbnail) with caching headers, the masks on a frame, and the
frames most similar to it (from the project's embedding index)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from api.auth import Principal
from api.deps import PrincipalDep, SessionDep, SettingsDep, WorkspaceDep
from api.errors import ApiError, not_found
from api.routes.common import AUTH_ERRORS, Id, errors, project_for
from api.routes.queue import frame_ref
from api.schemas import FrameAnnotations, MaskPublic, SegmentPublic, SegmentRequest, SimilarPublic
from curator.index import FrameNotEmbeddedError, UnknownFrameError, similar_frames
from curator.store import repo
from curator.store.models import Frame
from curator.workspace import Workspace

router = APIRouter(prefix="/frames", tags=["frames"])


def _frame_for(session: Session, principal: Principal, frame_id: int) -> Frame:
    found = repo.frame_project(session, frame_id)
    if found is None or (principal.project_id is not None and principal.project_id != found[1]):
        raise not_found("frame", frame_id)
    project_for(session, principal, found[1], "viewer")
    return found[0]


def _thumbnail(workspace: Workspace, frame: Frame, side: int) -> str:
    """Blob path of the frame's thumbnail, made on first use (written atomically)."""
    import cv2

    relative = f"thumbs/{frame.content_hash}-{side}.jpg"
    if workspace.blobs.path(relative).exists():
        return relative
    image = cv2.imread(str(workspace.blobs.path(frame.blob_path)), cv2.IMREAD_COLOR)
    if image is None:
        raise ApiError(404, "image_missing", f"the image of frame {frame.id} is missing")
    scale = side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), 85])
    if not ok:
        raise ApiError(500, "encode_failed", "could not encode the thumbnail")
    workspace.blobs.write_bytes_atomic(relative, buf.tobytes())
    return relative


@router.get(
    "/{frame_id}/image",
    response_class=Response,
    responses={
        **AUTH_ERRORS,
        200: {"content": {"image/jpeg": {}}, "description": "The frame as JPEG."},
        304: {"description": "Not modified (the ETag matched)."},
    },
)
def frame_image(
    frame_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    workspace: WorkspaceDep,
    settings: SettingsDep,
    size: Literal["full", "thumb"] = Query(default="full", description="``thumb``: longer side ``thumb_side``."),
    if_none_match: str | None = Header(default=None, max_length=200),
) -> Response:
    """The frame's JPEG. Frames never change, so the answer carries a strong ``ETag`` and a long
    ``Cache-Control`` max-age; a matching ``If-None-Match`` gets 304."""
    frame = _frame_for(session, principal, frame_id)
    etag = f'"{frame.content_hash}-{size}"'
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={settings.image_cache_seconds}, immutable"}
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    relative = frame.blob_path if size == "full" else _thumbnail(workspace, frame, settings.thumb_side)
    path = workspace.blobs.path(relative)
    if not path.is_file():
        raise ApiError(404, "image_missing", f"the image of frame {frame_id} is missing")
    return FileResponse(path, media_type="image/jpeg", headers=headers)


@router.get("/{frame_id}/annotations", response_model=FrameAnnotations, responses=AUTH_ERRORS)
def frame_annotations(frame_id: Id, session: SessionDep, principal: PrincipalDep) -> FrameAnnotations:
    """Every mask stored on a frame, with its source (human, propagated, predicted) and confidence."""
    frame = _frame_for(session, principal, frame_id)
    return FrameAnnotations(
        frame=frame_ref(frame),
        masks=[
            MaskPublic(object_id=a.object_id, source=a.source, confidence=a.confidence, rle=a.rle)
            for a in repo.frame_annotations(session, frame_id)
        ],
    )


@router.get(
    "/{frame_id}/similar", response_model=list[SimilarPublic], responses={**AUTH_ERRORS, **errors(409)}
)
def frame_similar(
    frame_id: Id,
    session: SessionDep,
    principal: PrincipalDep,
    workspace: WorkspaceDep,
    k: int = Query(default=10, ge=1, le=100, description="How many similar frames (1 to 100)."),
) -> list[SimilarPublic]:
    """The ``k`` frames of the project whose embeddings are most similar to this frame's (cosine,
    most similar first, the frame itself excluded), searched in the project's FAISS index under the
    backbone selections use. 409 ``not_embedded`` while the frame has no embedding yet."""
    frame = _frame_for(session, principal, frame_id)
    try:
        found = similar_frames(workspace, frame.video.project_id, frame_id, k)
    except UnknownFrameError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except FrameNotEmbeddedError as exc:
        raise ApiError(409, "not_embedded", str(exc)) from exc
    out: list[SimilarPublic] = []
    for other_id, similarity in found:
        other = session.get(Frame, other_id)
        if other is not None:  # the index may briefly hold a frame deleted since
            out.append(SimilarPublic(frame=frame_ref(other), similarity=similarity))
    return out


@router.post("/{frame_id}/segment", response_model=SegmentPublic, responses={**AUTH_ERRORS, **errors(400, 409)})
def frame_segment(
    frame_id: Id, body: SegmentRequest, session: SessionDep, principal: PrincipalDep, workspace: WorkspaceDep
) -> SegmentPublic:
    """Click-to-segment (annotator): one object's mask from clicks, an optional box and the object's
    current mask; nothing is stored. Send every click made on the object so far with the mask the
    last call answered: each click refines it. The first click on a frame runs the backend's image
    encoder (cached per frame); later clicks cost a few hundred milliseconds on a CPU. 422 for clicks
    or a box outside the frame (`invalid_prompt`), a mask of another size (`invalid_mask`) or an
    unknown backend (`unknown_segmenter`); 409 `segmenter_unavailable` when the named backend's
    weights are not installed on the server."""
    import time

    from curator.annotate.masks import encode_rle
    from curator.annotate.sam2_backend import SAM2WeightsError
    from curator.embed import BackboneWeightsError
    from curator.project import Project
    from curator.registry import UnknownNameError
    from curator.segment import InvalidPromptError

    found = repo.frame_project(session, frame_id)
    if found is None or (principal.project_id is not None and principal.project_id != found[1]):
        raise not_found("frame", frame_id)
    project_for(session, principal, found[1], "annotator")
    session.close()  # a first click may run an encoder for seconds: hold no connection meanwhile
    points = [(p.x, p.y, p.positive) for p in body.points]
    mask = None if body.mask is None else body.mask.model_dump()
    start = time.perf_counter()
    try:
        result = Project.by_id(workspace, found[1]).segment(frame_id, points, body.box, mask, body.backend)
    except InvalidPromptError as exc:
        raise ApiError(422, "invalid_prompt", str(exc)) from exc
    except UnknownNameError as exc:
        raise ApiError(422, "unknown_segmenter", str(exc)) from exc
    except (BackboneWeightsError, SAM2WeightsError) as exc:
        raise ApiError(409, "segmenter_unavailable", str(exc)) from exc
    ms = (time.perf_counter() - start) * 1000.0
    return SegmentPublic(mask=encode_rle(result.mask), score=result.score, backend=result.backend, ms=round(ms, 1))
