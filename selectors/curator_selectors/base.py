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
