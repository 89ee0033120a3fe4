"""Keyframe selectors for curator, each registered by name.

Importing this package registers every built-in selector. ``create_selector(name, **params)``
builds one; ``list_selectors()`` lists the names.

=================== ===========================================================================
name                what it picks
=================== ===========================================================================
``uniform``         evenly spaced in time within each video (the industry default)
``random``          uniformly at random
``kcenter``         greedy k-center on the embeddings (Coreset)
``temporal``        greedy k-center in a joint embedding-and-time space
``typicality``      most typical frame of each uncovered k-means cluster (TypiClust)
``probcover``       greedy max coverage of delta-balls (ProbCover)
``entropy``         highest ``entropy`` score
``margin``          lowest ``margin`` score
``least_confidence`` lowest ``confidence`` (or ``propagation_confidence``)
``disagreement``    highest forward/backward propagation ``disagreement``
``hybrid``          weighted diversity + density + uncertainty (Lightly-style strengths)
``curator``         the default: joint embedding-and-time k-medoids, shots first
=================== ===========================================================================
"""

from curator.pool import Pool, Selection
from curator_selectors import baselines as _baselines  # noqa: F401  (registers uniform, random)
from curator_selectors import density as _density  # noqa: F401  (registers typicality, probcover)
from curator_selectors import diversity as _diversity  # noqa: F401  (registers kcenter)
from curator_selectors import hybrid as _hybrid  # noqa: F401  (registers hybrid, curator)
from curator_selectors import temporal as _temporal  # noqa: F401  (registers temporal)
from curator_selectors import uncertainty as _uncertainty  # noqa: F401  (registers entropy, margin, ...)
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
