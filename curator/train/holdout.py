"""How many human frames a round holds out to evaluate its proxy (kept light: no torch import), and
why a round may have none."""

from __future__ import annotations

import math

#: A round holds out human frames only when it has at least this many.
MIN_HUMAN_FOR_HOLDOUT = 5
#: The share of human frames held out when a round does not say (``RoundConfig.holdout_fraction``).
DEFAULT_HOLDOUT_FRACTION = 0.1


def holdout_size(human_frames: int, fraction: float = DEFAULT_HOLDOUT_FRACTION) -> int:
    """Human frames held out of ``human_frames``: ``floor(fraction * n)``, none below
    :data:`MIN_HUMAN_FOR_HOLDOUT`."""
    if human_frames < MIN_HUMAN_FOR_HOLDOUT:
        return 0
    return math.floor(fraction * human_frames)


def human_frames_needed(fraction: float = DEFAULT_HOLDOUT_FRACTION) -> int:
    """The fewest human frames from which a round holds out at least one (0 for a fraction of 0 or
    less: no round then holds any out)."""
    if fraction <= 0:
        return 0
    need = max(MIN_HUMAN_FOR_HOLDOUT, math.ceil(1.0 / fraction))
    while holdout_size(need, fraction) < 1:
        need += 1
    return need


def missing_holdout_note(human_frames: int, fraction: float = DEFAULT_HOLDOUT_FRACTION) -> str:
    """Why a round with ``human_frames`` human frames has no proxy metrics, in words."""
    need = human_frames_needed(fraction)
    if need == 0:
        return f"no proxy metrics: this round held out no human frames (holdout_fraction {fraction:g})"
    return (
        f"no proxy metrics: too few human frames for a holdout ({human_frames} at this round; "
        f"at least {need} are needed with holdout_fraction {fraction:g}); label more frames"
    )
