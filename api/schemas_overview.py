"""Bodies of the project view's routes: overview, video timeline, embedding map, round history, and
queueing frames by id. Long per-frame lists are columns (one list per field, aligned by position)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import QueuePublic, UtcDatetime

FrameId = Annotated[int, Field(ge=1, le=2**62)]


class ShotView(BaseModel):
    """A shot of a video: its span in seconds and decoded frames (end exclusive) and its stored frames."""

    id: int
    index: int
    start_time: float
    end_time: float
    start_frame: int
    end_frame: int
    frames: int


class PickView(BaseModel):
    """A pick of a selection: where its frame is, why it was picked, and its task's state."""

    selection_id: int
    frame_id: int
    video_id: int
    frame_index: int
    timestamp: float
    rank: int
    utility: float
    reason: str = Field(examples=["coverage"])
    task_id: int | None
    task_state: str | None = Field(description="`open`, `leased` or `done` (an expired lease reads `open`); null: not queued.")


class VideoOverview(BaseModel):
    """A video on the overview's timeline: its shots, its picks and when its labelled frames are."""

    id: int
    filename: str
    fps: float
    duration: float
    width: int
    height: int
    frames: int
    decoded_frames: int
    sample_fps: float
    sample_stride: int
    created_at: UtcDatetime
    shots: list[ShotView]
    picks: list[PickView]
    labelled: list[float] = Field(description="Time stamps (seconds) of the frames with human masks.")


class ProjectRef(BaseModel):
    """A project's id and name."""

    id: int
    name: str


class OverviewTotals(BaseModel):
    """Counts over the whole project."""

    videos: int
    frames: int
    shots: int
    labelled_frames: int
    picks: int
    selections: int


class SelectionSummary(BaseModel):
    """A selection, with the round that made it (null: a selection of its own)."""

    id: int
    strategy: str
    budget: int
    picks: int
    created_at: UtcDatetime
    round: int | None


class AnnotatorView(BaseModel):
    """One key's share of the queue (key 0: the library and the CLI)."""

    key_id: int
    prefix: str | None
    name: str | None
    leased: int = Field(description="Tasks it holds an unexpired lease on now.")
    done: int = Field(description="Tasks it submitted.")


class OverviewPublic(BaseModel):
    """The project overview."""

    project: ProjectRef
    totals: OverviewTotals
    videos: list[VideoOverview]
    selections: list[SelectionSummary]
    queue: QueuePublic
    annotators: list[AnnotatorView]
    picks_truncated: bool = Field(description="True when the project has more picks than the overview lists (5,000).")


class TimelineVideo(BaseModel):
    """A video's file, rate, size and sampling."""

    id: int
    filename: str
    fps: float
    duration: float
    width: int
    height: int
    decoded_frames: int
    sample_fps: float
    sample_stride: int


class TimelineFrames(BaseModel):
    """A video's stored frames in time order, one list per field."""

    id: list[int]
    frame_index: list[int]
    timestamp: list[float]
    shot_id: list[int | None]
    source: list[str | None] = Field(
        description="The first of human, propagated, predicted, rejected the frame has masks from (null: none)."
    )
    confidence: list[float | None] = Field(description="The lowest object confidence of that source (human: 1).")
    objects: list[int]
    task: list[str | None] = Field(description="The state of the frame's task (null: none).")


class TimelinePublic(BaseModel):
    """One video frame by frame: the confidence curve, keyframes, tasks and picks."""

    video: TimelineVideo
    shots: list[ShotView]
    frames: TimelineFrames
    keyframes: list[int] = Field(description="Ids of the frames with human masks.")
    picks: list[PickView]
    sources: dict[str, int] = Field(description="Frames per source.")


class VideoRef(BaseModel):
    """A video's id and file name."""

    id: int
    filename: str


class EmbeddingMapPublic(BaseModel):
    """A 2-D PCA projection of the project's frame embeddings, one list per field."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "backbone": "classic", "version": "2-2", "cached": True, "explained": [0.41, 0.12], "count": 2,
        "reason": None, "videos": [{"id": 1, "filename": "a.mp4"}], "frame_id": [1, 2], "x": [0.0, 1.0],
        "y": [0.5, 0.5], "video_id": [1, 1], "shot_id": [1, 1], "labelled": [True, False],
        "picked": [False, True], "queued": [False, True],
    }]})

    backbone: str | None
    version: str = Field(description="`<embeddings>-<highest embedding id>`: the state the projection was made from.")
    cached: bool = Field(description="The projection was read from its cached blob.")
    explained: list[float] = Field(description="Share of the variance each axis explains.")
    count: int
    reason: str | None = Field(description="Why the map is empty (no embeddings yet); null otherwise.")
    videos: list[VideoRef]
    frame_id: list[int]
    x: list[float] = Field(description="In [0, 1].")
    y: list[float] = Field(description="In [0, 1], up.")
    video_id: list[int]
    shot_id: list[int | None]
    labelled: list[bool]
    picked: list[bool]
    queued: list[bool] = Field(description="The frame has an open or leased task.")


class RoundMetricsView(BaseModel):
    """A round's proxy metrics on its held-out human frames, and what it trained on."""

    proxy_J: float | None = None
    proxy_F: float | None = None
    proxy_JF: float | None = None
    holdout_frames: int | None = None
    train_frames: int | None = None
    train_human: int | None = None
    train_propagated: int | None = None


class RoundView(BaseModel):
    """One round: its metrics (or why it has none) and the batch it queued."""

    id: int
    number: int
    state: str
    job_id: int | None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None
    strategy: str | None
    budget: int | None
    selection_id: int | None
    human_frames: int | None = Field(description="Human frames at this round (trained on plus held out).")
    metrics: RoundMetricsView
    note: str | None = Field(description="Why the round has no proxy metrics (too few human frames, running, failed).")
    picks: list[PickView]


class RoundSeries(BaseModel):
    """The rounds' metrics aligned by round, for a plot (null where a round has none)."""

    number: list[int]
    proxy_JF: list[float | None]
    proxy_J: list[float | None]
    proxy_F: list[float | None]
    human_frames: list[int | None]


class RoundHistoryPublic(BaseModel):
    """Every round of a project, oldest first."""

    rounds: list[RoundView]
    series: RoundSeries


class QueueFramesRequest(BaseModel):
    """Queue frames for labelling by id (from the video view or a lasso on the embedding map)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"frame_ids": [12, 13], "reason": "lasso"}]})

    frame_ids: list[FrameId] = Field(min_length=1, max_length=20_000)
    reason: str = Field(default="manual", min_length=1, max_length=100, pattern=r"\S")


class QueuedFrame(BaseModel):
    """A frame given and its task."""

    frame_id: int
    task_id: int
    state: str = Field(description="The task's state: `open` for a new one.")
    created: bool = Field(description="The task was made by this call (else the frame had one already).")


class QueueFramesPublic(BaseModel):
    """What queueing did: a task per frame, new or already there."""

    created: int
    existing: int
    tasks: list[QueuedFrame]
    preannotate_job: int | None = Field(description="The `preannotate` job of the new tasks (null: none queued).")
