"""curator: self-hosted active-learning curation for video segmentation datasets.

The whole job goes through one API (:mod:`curator.project`)::

    import curator

    street = curator.open("./curator-data").project("street")
    street.ingest(["clip.mp4"])
    street.select(8)

Heavy libraries (torch, timm, sam2, faiss) are imported lazily by the modules that need them, and
the façade itself loads on first use, so ``import curator`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from curator.project import Curator, Project, open

__all__ = ["Curator", "Project", "__version__", "open"]


def __getattr__(name: str) -> Any:
    if name in ("open", "Curator", "Project"):
        from curator import project

        return getattr(project, name)
    raise AttributeError(f"module 'curator' has no attribute {name!r}")
