"""curator: self-hosted active-learning curation for video segmentation datasets.

The engine package. Heavy libraries (torch, timm, sam2, faiss) are imported lazily by the
modules that need them so that ``import curator`` stays fast.
"""

__version__ = "0.1.0"
