"""Request (``XCreate``/``XRequest``) and response (``XPublic``) bodies, with OpenAPI examples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

RLE_EXAMPLE: dict[str, Any] = {"size": [4, 4], "counts": "52203"}


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive value is taken as UTC (SQLite hands back naive values, written as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A time stamp in answers: always UTC with an offset (serialised with ``Z``).
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class ErrorPublic(BaseModel):
    """Every error answer: a stable ``code`` to branch on and a readable ``detail``."""

    code: str = Field(examples=["not_found"])
    detail: str = Field(examples=["no task with id 42"])


class ProjectCreate(BaseModel):
    """A new project."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "street-scenes"}]})

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


class ProjectPublic(BaseModel):
    """A project with its sizes."""

    id: int
    name: str
    created_at: UtcDatetime
    videos: int = 0
    frames: int = 0


class ProgressPublic(BaseModel):
    """How far a job is: items ``done`` of ``total`` (``None`` when unknown) in ``stage``."""

    stage: str | None = None
    done: int = 0
    total: int | None = None
    fraction: float | None = Field(default=None, examples=[0.5])


class JobPublic(BaseModel):
    """A job: state, progress, timings, and its result or error."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7, "project_id": 1, "kind": "ingest", "state": "running",
                    "progress": {"stage": "ingest", "done": 120, "total": 200, "fraction": 0.6},
                    "params": {"filename": "bedroom.mp4"}, "result": None, "error": None,
                    "created_at": "2025-01-01T12:00:00Z", "started_at": "2025-01-01T12:00:01Z",
                    "finished_at": None, "queued_s": 1.0, "run_s": 2.5, "attempts": 1,
                }
            ]
        }
    )

    id: int
    project_id: int | None
    kind: Literal["ingest", "embed", "select", "propagate", "round", "preannotate"] | str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"] | str
    progress: ProgressPublic
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: ErrorPublic | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    queued_s: float | None = Field(default=None, description="Seconds between creation and start.")
    run_s: float | None = Field(default=None, description="Seconds running (so far, if still running).")
    attempts: int


class VideoPublic(BaseModel):
    """An ingested video."""

    id: int
    filename: str
    codec: str
    fps: float
    width: int
    height: int
    duration: float
    frames: int
    created_at: UtcDatetime


class PathRegister(BaseModel):
    """A video already on the server, under one of the configured ``path_roots``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"path": "/data/videos/a.mp4"}]})

    path: str = Field(min_length=1, max_length=4096)
    fps: float | None = Field(
        default=None, ge=0, le=1000, allow_inf_nan=False, examples=[2.0],
        description="Candidate frames per second for this video (0: every `stride`-th frame); default the "
        "server's `sample_fps`.",
    )
    stride: int | None = Field(
        default=None, ge=1, le=100_000, description="Keep every n-th decoded frame; default the server's `sample_stride`."
    )
    part_frames: int | None = Field(
        default=None, ge=1, le=100_000_000,
        description="A file of more than this many decoded frames is decoded in parts cut at its keyframes (Ray "
        "tasks under `curator worker --ray`) and stored as one video; default 4096.",
    )


class SelectionCreate(BaseModel):
    """Run a selector over the project's pool; the picks become tasks in the queue."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"strategy": "curator", "budget": 8, "params": {}}]},
    )

    strategy: str | None = Field(
        default=None, min_length=1, max_length=100, description="Selector name; default the server's (`curator`)."
    )
    budget: int = Field(ge=1, le=100_000)
    params: dict[str, Any] = Field(default_factory=dict, description="Selector constructor parameters.")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    backbone: str | None = Field(default=None, max_length=100)


class PickPublic(BaseModel):
    """A picked frame with why it was picked."""

    frame_id: int
    rank: int
    utility: float
    reason: str
    video_id: int
    frame_index: int
    timestamp: float
    task_id: int | None


class SelectionPublic(BaseModel):
    """A stored selection and its picks in pick order."""

    id: int
    project_id: int
    strategy: str
    budget: int
    params: dict[str, Any]
    seed: int
    backbone: str
    created_at: UtcDatetime
    picks: list[PickPublic]


class EmbedRequest(BaseModel):
    """Embed every frame of the project lacking an embedding under ``backbone``."""

    model_config = ConfigDict(extra="forbid")

    backbone: str | None = Field(default=None, max_length=100, examples=["classic"])
    part_frames: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Frames per part of a long video (a Ray task under `curator worker --ray`); default 1024.",
    )


class ClaimRequest(BaseModel):
    """Lease up to ``limit`` open tasks."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"limit": 4}]})

    limit: int = Field(default=1, ge=1, le=1000)


class TaskPublic(BaseModel):
    """A labelling task (one frame)."""

    id: int
    project_id: int
    frame_id: int
    video_id: int
    frame_index: int
    state: str
    reason: str
    lease_expires_at: float | None = Field(description="Unix seconds at which the caller's lease ends.")
    image_url: str


class ClaimPublic(BaseModel):
    """Tasks leased to the caller by one claim (possibly fewer than asked, or none)."""

    tasks: list[TaskPublic]
    lease_seconds: float


class Rle(BaseModel):
    """A COCO run-length encoded mask: ``size`` is ``[height, width]``; ``counts`` compressed or not."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [RLE_EXAMPLE]})

    size: list[int] = Field(min_length=2, max_length=2)
    counts: str | list[int] = Field(max_length=10_000_000)


class MaskIn(BaseModel):
    """The mask of one object (``object_id`` 1..255, stable across the frames of a video)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"object_id": 1, "rle": RLE_EXAMPLE}]})

    object_id: int = Field(ge=1, le=255)
    rle: Rle


class MaskPublic(BaseModel):
    """A stored mask with its provenance (``rejected``: human masks a reviewer sent back)."""

    object_id: int
    source: Literal["human", "propagated", "predicted", "rejected"] | str
    confidence: float
    rle: dict[str, Any]


class SubmitRequest(BaseModel):
    """A labelled frame: ``masks`` as COCO RLE, or ``label_png`` (base64 indexed PNG, 0 = background).

    An empty ``masks`` list with no PNG says the frame shows no object.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"masks": [{"object_id": 1, "rle": RLE_EXAMPLE}], "propagate": False}]},
    )

    masks: list[MaskIn] = Field(default_factory=list, max_length=255)
    label_png: str | None = Field(default=None, max_length=50_000_000, description="Base64 of an indexed PNG.")
    propagate: bool = Field(default=False, description="Start a propagation job over the frame's video.")


class SubmitPublic(BaseModel):
    """What a submission stored."""

    task_id: int
    frame_id: int
    masks: int
    propagate_job: JobPublic | None = None


class FrameRef(BaseModel):
    """A frame and where to get its image."""

    id: int
    video_id: int
    frame_index: int
    timestamp: float
    width: int
    height: int
    image_url: str
    thumb_url: str


class SimilarPublic(BaseModel):
    """A frame similar to the one asked about, from the project's embedding index."""

    frame: FrameRef
    similarity: float = Field(
        examples=[0.93], description="Cosine similarity of the two frames' embeddings, in [-1, 1]."
    )


class TaskDetail(TaskPublic):
    """A task with its frame, neighbouring frames and pre-annotation: the frame's masks of the best
    source present, human (a reopened task), rejected (a rejected one), propagated, then predicted."""

    frame: FrameRef
    neighbours: list[FrameRef]
    pre_annotation: list[MaskPublic]
    review_note: str | None = Field(default=None, description="Why a reviewer last rejected the submission.")


class RejectRequest(BaseModel):
    """Send a submission back to the queue, with a note for the annotator."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "the left arm is missing"}]})

    note: str = Field(min_length=1, max_length=10_000)


class PreannotateRequest(BaseModel):
    """Pre-annotate queued tasks (default: every open or leased task of the project)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"task_ids": [1, 2, 3]}]})

    task_ids: list[Annotated[int, Field(ge=1, le=2**62)]] | None = Field(default=None, max_length=100_000)
    propagator: str | None = Field(
        default=None, max_length=100, description="Propagator; default the server's (`auto`)."
    )


class CategoryCreate(BaseModel):
    """A label category of a project, with its display colour."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "person", "color": "#ff0000"}]})

    name: str = Field(min_length=1, max_length=100)
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$", description="`#rrggbb`.")


class CategoryPublic(BaseModel):
    """A category and the object ids that have it."""

    id: int
    project_id: int
    name: str
    color: str
    objects: list[int]


class ObjectCategoryUpdate(BaseModel):
    """The category of an object (``null`` removes it: the object exports as ``object``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"category_id": 1}]})

    category_id: int | None = Field(ge=1, le=2**62)


class ObjectPublic(BaseModel):
    """An object id of a project (the same object on every frame of a video) and its category."""

    object_id: int
    category_id: int | None
    category: str | None
    color: str | None


class QueuePublic(BaseModel):
    """Task counts by state; ``expired`` leases count as ``open`` when claimed."""

    open: int
    leased: int
    expired: int
    done: int
    total: int


class PropagateRequest(BaseModel):
    """Propagate a video's human masks to all its frames (or only between keyframes with ``scope=between``);
    without ``video_id``, every video of the project that has human masks, one part per video."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"video_id": 1}, {}]})

    video_id: int | None = Field(
        default=None, ge=1, le=2**62,
        description="The video; omitted, every video with human masks (split per video, on a Ray cluster under "
        "`curator worker --ray`).",
    )
    propagator: str | None = Field(
        default=None, max_length=100, examples=["flow"],
        description="Propagator; default the server's (`auto`: flow+feature with DINOv2 weights, else flow).",
    )
    scope: Literal["between", "video"] = "video"
    part_frames: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="A video longer than this is propagated in parts cut at its keyframes (Ray tasks under "
        "`curator worker --ray`), with the same masks; default 1024.",
    )


class FrameAnnotations(BaseModel):
    """The masks stored on a frame."""

    frame: FrameRef
    masks: list[MaskPublic]


class ClickIn(BaseModel):
    """A click on the frame, in pixels (``x`` along the width); ``positive`` False means "not the object"."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"x": 120.0, "y": 80.0, "positive": True}]})

    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    positive: bool = True


class SegmentRequest(BaseModel):
    """Click-to-segment: every click on the object so far (oldest first), an optional box and the
    object's current mask, which the answer refines rather than replaces."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"points": [{"x": 120.0, "y": 80.0, "positive": True}], "box": None, "mask": None, "backend": None}]
        },
    )

    points: list[ClickIn] = Field(default_factory=list, max_length=1000)
    box: list[float] | None = Field(
        default=None, min_length=4, max_length=4, description="``[x0, y0, x1, y1]`` in pixels around the object."
    )
    mask: Rle | None = Field(default=None, description="The object's current mask (the last answer's, or edited).")
    backend: str | None = Field(
        default=None, max_length=100, examples=["feature"],
        description="`grabcut`, `feature`, `sam2` or `auto`; default the server's `segmenter` setting (`auto`).",
    )


class SegmentPublic(BaseModel):
    """The object's mask from a segment call."""

    mask: dict[str, Any] = Field(examples=[RLE_EXAMPLE], description="COCO RLE of the frame's size.")
    score: float = Field(examples=[0.91], description="The backend's confidence in the mask, in [0, 1].")
    backend: str = Field(examples=["feature"], description="The segmenter that answered.")
    ms: float = Field(examples=[120.5], description="Milliseconds the segmenter took.")
