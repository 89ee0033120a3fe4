"""A DAVIS-layout dataset reader: ``JPEGImages/<res>/<seq>/*.jpg`` and ``Annotations/<res>/<seq>/*.png``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator.annotate.masks import read_indexed_png
from curator.store.blobs import read_rgb


@dataclass(frozen=True)
class DavisSequence:
    """One sequence: frame and annotation paths, aligned by file stem.

    Attributes:
        name: Sequence name (its folder).
        frame_paths: JPEG paths in frame order.
        mask_paths: Annotation PNG paths, same order and stems.
    """

    name: str
    frame_paths: tuple[Path, ...]
    mask_paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.frame_paths)

    def frame(self, index: int) -> np.ndarray:
        """RGB uint8 frame ``index``."""
        return read_rgb(self.frame_paths[index])

    def frames(self) -> list[np.ndarray]:
        """Every frame, RGB uint8 (DAVIS sequences are short)."""
        return [self.frame(i) for i in range(len(self))]

    def labels(self, index: int) -> np.ndarray:
        """Indexed label map of frame ``index`` (0 background, k instance k)."""
        return read_indexed_png(self.mask_paths[index])


def load_davis(
    root: str | Path, resolution: str = "480p", sequences: Sequence[str] | None = None
) -> list[DavisSequence]:
    """List the sequences of a DAVIS-layout folder.

    Args:
        root: Folder holding ``JPEGImages`` and ``Annotations``.
        resolution: Sub-folder such as ``480p``.
        sequences: Names to keep (default all, sorted).

    Raises:
        FileNotFoundError: If the layout is missing, a named sequence is absent, or a frame has no mask.
    """
    root = Path(root)
    images = root / "JPEGImages" / resolution
    annotations = root / "Annotations" / resolution
    for folder in (images, annotations):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} does not exist: expected the DAVIS layout JPEGImages/ and Annotations/"
            )
    names = sorted(p.name for p in images.iterdir() if p.is_dir())
    if sequences:
        missing = sorted(set(sequences) - set(names))
        if missing:
            raise FileNotFoundError(f"sequences {missing} not in {images}; available: {names}")
        names = [n for n in names if n in set(sequences)]
    out = []
    for name in names:
        frames = tuple(sorted((images / name).glob("*.jpg")))
        masks = []
        for frame in frames:
            mask = annotations / name / f"{frame.stem}.png"
            if not mask.is_file():
                raise FileNotFoundError(f"frame {frame} has no annotation {mask}")
            masks.append(mask)
        if frames:
            out.append(DavisSequence(name, frames, tuple(masks)))
    return out
