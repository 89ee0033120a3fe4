"""The selector protocol and registry."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from curator.pool import Pool, Selection
from curator.registry import Registry


@runtime_checkable
class Selector(Protocol):
    """Picks up to ``budget`` unlabelled rows of a pool.

    Settings go in the constructor; ``select`` is pure (no I/O, no database) and deterministic for a
    given ``rng`` state. It returns ``min(budget, unlabelled rows)`` distinct, unlabelled indices.
    """

    name: ClassVar[str]

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick rows of ``pool``."""
        ...


SELECTORS: Registry[Selector] = Registry("selector")


def register_selector(name: str) -> Any:
    """Class decorator registering a selector under ``name``."""
    return SELECTORS.register(name)


def create_selector(name: str, **params: Any) -> Selector:
    """Build the selector called ``name`` with constructor ``params``."""
    return SELECTORS.create(name, **params)


def list_selectors() -> list[str]:
    """Registered selector names."""
    return SELECTORS.names()


def check_budget(budget: int) -> None:
    """Raise ``ValueError`` unless ``budget`` is a non-negative integer."""
    if int(budget) != budget or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget!r}")


def empty_selection(name: str) -> Selection:
    """A selection with no picks."""
    return Selection(np.zeros(0, np.int64), np.zeros(0, np.float64), name)


def make_selection(name: str, picks: list[int], utilities: list[float], reasons: list[str]) -> Selection:
    """Build a :class:`Selection` from parallel pick, utility and reason lists."""
    return Selection(
        np.asarray(picks, dtype=np.int64).reshape(-1),
        np.asarray(utilities, dtype=np.float64).reshape(-1),
        name,
        tuple(reasons),
    )


def effective_budget(pool: Pool, budget: int) -> int:
    """``min(budget, unlabelled rows)`` after checking ``budget``."""
    check_budget(budget)
    return min(int(budget), int((~pool.labeled).sum()))


def minmax(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Scale ``values`` to ``[0, 1]`` using the range over ``mask`` (constant input maps to 0).

    Non-finite values map to 0.
    """
    v = np.asarray(values, dtype=np.float64)
    ref = v if mask is None else v[mask]
    ref = ref[np.isfinite(ref)]
    out = np.zeros_like(v)
    if ref.size == 0:
        return out
    lo, hi = float(ref.min()), float(ref.max())
    if hi - lo <= 1e-12:
        return out
    finite = np.isfinite(v)
    out[finite] = np.clip((v[finite] - lo) / (hi - lo), 0.0, 1.0)
    return out
