"""Bodies of the retrain loop's routes: rounds and external predictions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import UtcDatetime


class RoundCreate(BaseModel):
    """Run one retrain-and-reselect round; the next batch is queued as tasks."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"strategy": "curator", "budget": 10}]}
    )

    strategy: str = Field(default="curator", min_length=1, max_length=100, description="Selector for the next batch.")
    budget: int = Field(default=10, ge=1, le=100_000, description="Frames to queue, across all videos.")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    propagator: str | None = Field(default=None, max_length=100, description="Default: the server's propagator.")
    backbone: str | None = Field(default=None, max_length=100, description="Pool embeddings (default: best).")
    selector_params: dict[str, Any] = Field(default_factory=dict)
    steps: int | None = Field(default=None, ge=1, le=100_000, description="Proxy training steps.")
    short_side: int | None = Field(default=None, ge=28, le=2048, description="Backbone input short side.")
    dense_min_confidence: float | None = Field(default=None, ge=0, le=1)
    holdout_fraction: float | None = Field(default=None, ge=0, le=0.9)
    mc_samples: int | None = Field(default=None, ge=0, le=64)
    part_frames: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Frames per propagate part (cut at keyframes) and per scoring part (Ray tasks under `curator worker --ray`); default 512.",
    )


class RoundPublic(BaseModel):
    """A round with its proxy metrics (held-out J&F, losses, dense-label sources) and timings."""

    id: int
    project_id: int
    number: int
    state: str
    job_id: int | None
    selection_id: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    timings: dict[str, Any]
    checkpoint: str | None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None


class FramePrediction(BaseModel):
    """A user's model output for one frame: named scores, class probabilities, or both.

    ``probabilities`` is a ``C x h x w`` nested list (classes first, any resolution); it is reduced to
    ``entropy``, ``margin``, ``confidence`` and their ``_top`` variants.
    """

    model_config = ConfigDict(extra="forbid")

    frame_id: int = Field(ge=1, le=2**62)
    scores: dict[str, float] = Field(default_factory=dict, examples=[{"entropy": 0.42}])
    probabilities: list[list[list[float]]] | None = None


class PredictionsCreate(BaseModel):
    """Per-frame predictions from the model the user ships; stored as ``external`` scores."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"frames": [{"frame_id": 1, "scores": {"entropy": 0.42, "margin": 0.3}}]}]},
    )

    frames: list[FramePrediction] = Field(min_length=1, max_length=100_000)
    top_fraction: float = Field(default=0.05, gt=0, le=1)


class PredictionsPublic(BaseModel):
    """What was stored."""

    frames: int
    scores: int
    names: list[str]
