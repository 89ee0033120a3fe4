"""What a selector sees (``Pool``) and what it returns (``Selection``): plain numpy, no database.

These live in the engine so that the engine can build pools and store selections; the selectors
themselves live in ``curator_selectors``, which imports these types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Pool:
    """Candidate frames of a project, aligned row by row.

    Attributes:
        embeddings: ``(n, d)`` float32, L2-normalised.
        frame_ids: ``(n,)`` int64 database ids.
        video_ids: ``(n,)`` int64.
        timestamps: ``(n,)`` seconds from the start of each frame's video.
        shot_ids: ``(n,)`` int64, unique across videos (``-1`` when unknown).
        labeled: ``(n,)`` bool, True where a human label exists (never picked again).
        scores: Named per-frame score arrays, ``(n,)`` each (for example ``"entropy"``).
        knn: Optional neighbour provider from the project index: ``k -> (similarities (n, k),
            indices into the pool (n, k))`` of every pool row's ``k`` nearest other rows, best
            first (index ``-1`` where there are fewer); built by ``curator.index.pool_knn``.
            Selectors that need neighbours use it when present and compute their own otherwise.
    """

    embeddings: np.ndarray
    frame_ids: np.ndarray
    video_ids: np.ndarray
    timestamps: np.ndarray
    shot_ids: np.ndarray
    labeled: np.ndarray
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)
    knn: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.frame_ids)
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise ValueError(f"embeddings must be (n={n}, d), got {self.embeddings.shape}")
        for name in ("video_ids", "timestamps", "shot_ids", "labeled"):
            shape = getattr(self, name).shape
            if shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {shape}")
        for name, values in self.scores.items():
            if np.shape(values) != (n,):
                raise ValueError(f"score {name!r} must have shape ({n},), got {np.shape(values)}")

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def candidates(self) -> np.ndarray:
        """Indices of rows that may be picked (not labelled)."""
        return np.flatnonzero(~self.labeled)


@dataclass(frozen=True)
class Selection:
    """A selector's picks.

    Attributes:
        indices: Row indices into the pool, in pick order.
        utilities: Why each was picked (the selector's utility at pick time), same order.
        selector: Name of the selector that made it.
        reasons: Criterion that chose each pick (for hybrids); defaults to the selector name.
    """

    indices: np.ndarray
    utilities: np.ndarray
    selector: str
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.indices.shape != self.utilities.shape:
            raise ValueError(
                f"indices {self.indices.shape} and utilities {self.utilities.shape} must have one shape"
            )
        if self.reasons and len(self.reasons) != len(self.indices):
            raise ValueError(f"got {len(self.reasons)} reasons for {len(self.indices)} picks")

    def reason(self, i: int) -> str:
        """The criterion that chose pick ``i``."""
        return self.reasons[i] if self.reasons else self.selector
