"""Human-readable outputs: the contact sheet of picked keyframes with a shot timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SheetFrame:
    """One picked frame on the contact sheet."""

    image: np.ndarray  # RGB uint8
    timestamp: float
    shot_index: int
    rank: int
    utility: float


def contact_sheet(
    frames: Sequence[SheetFrame],
    shot_starts: Sequence[float],
    duration: float,
    out: Path,
    title: str,
    columns: int = 4,
) -> Path:
    """Draw the picks in a grid (pick rank, time stamp, shot) above a timeline of shots and picks.

    Args:
        frames: Picks to show, in the order to draw them.
        shot_starts: Start time of each shot in seconds (the first is 0).
        duration: Video length in seconds, for the timeline.
        out: PNG path to write.
        title: Figure title.
        columns: Thumbnails per row.

    Returns:
        ``out``.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    n = max(1, len(frames))
    rows = (n + columns - 1) // columns
    # a bare Figure draws off-screen without switching pyplot's backend (notebooks keep theirs)
    fig = Figure(figsize=(3.2 * columns, 2.2 * rows + 1.4), dpi=110)
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[*([1.0] * rows), 0.35])
    for i, frame in enumerate(frames):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        ax.imshow(frame.image)
        ax.set_title(f"#{frame.rank + 1}  t={frame.timestamp:.2f}s  shot {frame.shot_index}", fontsize=8)
        ax.axis("off")
    timeline = fig.add_subplot(grid[rows, :])
    colours = colormaps["tab10"]
    bounds = [*shot_starts, duration]
    for s in range(len(shot_starts)):
        timeline.axvspan(bounds[s], bounds[s + 1], color=colours(s % 10), alpha=0.25)
        timeline.axvline(bounds[s], color="black", linewidth=0.8)
    for frame in frames:
        timeline.axvline(frame.timestamp, color="red", linewidth=1.5)
        timeline.text(frame.timestamp, 0.55, str(frame.rank + 1), fontsize=7, ha="center", color="red")
    timeline.set_xlim(0, max(duration, 1e-3))
    timeline.set_yticks([])
    timeline.set_xlabel("time (s): shaded bands are shots, red lines are picks")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
