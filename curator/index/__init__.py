"""The FAISS store of a project's frame embeddings, and the searches over it.

``FaissIndex`` is the store; :func:`similar_frames`, :func:`near_duplicates` and :func:`pool_knn`
(the ``Pool.knn`` provider of selector pools) search a project's persisted index.
"""

from curator.index.faiss_store import DEFAULT_NPROBE, FaissIndex, ivf_nlist, make_ivf
from curator.index.neighbours import (
    FrameNotEmbeddedError,
    NearDuplicates,
    PoolKnn,
    SimilarityLookupError,
    UnknownFrameError,
    near_duplicates,
    pool_knn,
    similar_frames,
)
from curator.index.project import load_project_index, sync_project_index

__all__ = [
    "DEFAULT_NPROBE",
    "FaissIndex",
    "FrameNotEmbeddedError",
    "NearDuplicates",
    "PoolKnn",
    "SimilarityLookupError",
    "UnknownFrameError",
    "ivf_nlist",
    "load_project_index",
    "make_ivf",
    "near_duplicates",
    "pool_knn",
    "similar_frames",
    "sync_project_index",
]
