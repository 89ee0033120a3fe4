"""The backbone protocol and registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from curator.registry import Registry


class BackboneWeightsError(RuntimeError):
    """The weights of a backbone could not be resolved from a checkpoint file or the model hub."""


@runtime_checkable
class Backbone(Protocol):
    """Turns RGB frames into one L2-normalised global vector each.

    Attributes:
        name: Registry name, stored with every embedding.
        dim: Length of the global vector.
    """

    name: ClassVar[str]
    dim: int

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed a batch of ``(H, W, 3)`` uint8 RGB images.

        Returns:
            ``(n, dim)`` float32 array with unit-length rows.
        """
        ...


BACKBONES: Registry[Backbone] = Registry("backbone")


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32)
