"""Keyframe selectors for curator, each registered by name.

Importing this package registers every built-in selector. ``create_selector(name, **params)``
builds one; ``list_selectors()`` lists the names.
"""

from curator.pool import Pool, Selection
from curator_selectors import baselines as _baselines  # noqa: F401  (registers uniform)
from curator_selectors import diversity as _diversity  # noqa: F401  (registers kcenter)
from curator_selectors.base import (
    SELECTORS,
    Selector,
    create_selector,
    list_selectors,
    register_selector,
)

__all__ = [
    "SELECTORS",
    "Pool",
    "Selection",
    "Selector",
    "create_selector",
    "list_selectors",
    "register_selector",
]
