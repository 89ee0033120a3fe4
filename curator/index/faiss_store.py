"""A FAISS vector index per project, keyed by frame id, persisted to a file.

Vectors are L2-normalised, so inner product is cosine similarity. Small pools use an exact
``IndexIDMap2(IndexFlatIP)``. From ``ivf_threshold`` vectors (default 200,000, where one exact
query over 384-d vectors starts to cost tens of milliseconds on a CPU) the index is rebuilt as
``IndexIVFFlat`` with ``sqrt(n)`` lists (:func:`ivf_nlist`; k-means trained on at most
``IVF_TRAIN_PER_LIST`` vectors a list), searched with ``nprobe`` lists (:data:`DEFAULT_NPROBE`),
which keeps queries in the millisecond range at a small loss of recall (``benchmarks/index_recall.py``
measures it). The IVF index takes frame ids natively and keeps a hash-table direct map so ``get``
and ``remove`` still work by id.

Why ``sqrt(n)`` lists and not FAISS's ``4 * sqrt(n)`` rule of thumb: the switch happens inside an
ingest, so build time (k-means training and assigning every vector, both linear in the list count)
is what a user waits for, while a query at this scale costs well under a millisecond either way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: IVF lists searched per query. 16 of ``sqrt(n)`` lists gives recall@10 >= 0.95 against the exact
#: index at 1M x 384 (``benchmarks/index_recall.py``; numbers in the README's FAISS paragraph).
DEFAULT_NPROBE = 16
#: k-means for the IVF lists trains on at most this many vectors a list (FAISS wants at least 39).
IVF_TRAIN_PER_LIST = 64


def _faiss() -> Any:
    import faiss

    return faiss


def ivf_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: ``sqrt(n)``, at least 1, at most ``n // 39`` (39 training points a list)."""
    return max(1, min(int(np.sqrt(n)), n // 39))


def make_ivf(ids: np.ndarray, vectors: np.ndarray, nprobe: int) -> Any:
    """A trained ``IndexIVFFlat`` (inner product) holding ``vectors`` under ``ids``, hash-table direct map.

    The one place IVF parameters are decided: :meth:`FaissIndex.add` (at the threshold) and
    :meth:`FaissIndex.build` both call it, and so does the recall benchmark.
    """
    faiss = _faiss()
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    nlist = ivf_nlist(len(ids))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    # FAISS samples the training set down to this many points a list (seeded, so builds repeat)
    ivf.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
    ivf.train(vectors)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
    ivf.add_with_ids(vectors, ids)
    ivf.nprobe = nprobe
    # the IVF index does not own its quantizer: hand ownership over so it lives as long as ivf
    quantizer.this.disown()
    ivf.own_fields = True
    return ivf


class FaissIndex:
    """Add, remove, get and search vectors by integer id.

    Args:
        dim: Vector length.
        ivf_threshold: Vector count from which :meth:`add` rebuilds the index as IVF.
        nprobe: IVF lists searched per query.
    """

    def __init__(self, dim: int, ivf_threshold: int = 200_000, nprobe: int = DEFAULT_NPROBE) -> None:
        faiss = _faiss()
        self.dim = dim
        self.ivf_threshold = ivf_threshold
        self.nprobe = nprobe
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._sorted_ids: np.ndarray | None = None  # cache for contains(); reset on every change

    # capabilities are properties, not guesses
    @property
    def is_exact(self) -> bool:
        """True while the index is a flat (exact) one."""
        return not self.is_ivf

    @property
    def is_ivf(self) -> bool:
        """True once the index has been rebuilt as IVF."""
        return isinstance(self._index, _faiss().IndexIVF)

    @property
    def nlist(self) -> int | None:
        """IVF lists (``None`` while exact)."""
        return int(self._index.nlist) if self.is_ivf else None

    @property
    def ntotal(self) -> int:
        """Number of stored vectors."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    def _check(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape (n, {self.dim}), got {vectors.shape}")
        if ids.shape != (vectors.shape[0],):
            raise ValueError(f"ids must have shape ({vectors.shape[0]},), got {ids.shape}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique")
        return ids, vectors

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which ``ids`` are stored."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._sorted_ids is None:
            self._sorted_ids = np.sort(self.ids())
        stored = self._sorted_ids
        if len(stored) == 0:
            return np.zeros(ids.shape, dtype=bool)
        pos = np.clip(np.searchsorted(stored, ids), 0, len(stored) - 1)
        return np.asarray(stored[pos] == ids)

    def ids(self) -> np.ndarray:
        """All stored ids (int64)."""
        faiss = _faiss()
        if self.is_ivf:
            invlists = self._index.invlists
            parts = [
                faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy()
                for i in range(self._index.nlist)
                if invlists.list_size(i)
            ]
            return np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids``; ids already stored are replaced.

        Raises:
            ValueError: On shape mismatches or repeated ids.
        """
        ids, vectors = self._check(ids, vectors)
        present = self.contains(ids)
        if present.any():
            self.remove(ids[present])
        self._index.add_with_ids(vectors, ids)
        self._sorted_ids = None
        if not self.is_ivf and self.ntotal >= self.ivf_threshold:
            self._rebuild_ivf()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (unknown ones are ignored); returns how many were removed."""
        faiss = _faiss()
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        # the IVF hash-table direct map only accepts an explicit id array
        selector = faiss.IDSelectorArray(ids) if self.is_ivf else faiss.IDSelectorBatch(ids)
        self._sorted_ids = None
        return int(self._index.remove_ids(selector))

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors for ``ids``, ``(len(ids), dim)``.

        Raises:
            KeyError: If an id is not stored.
        """
        ids = np.asarray(ids, dtype=np.int64)
        missing = ids[~self.contains(ids)]
        if len(missing):
            raise KeyError(f"ids not in the index: {missing[:10].tolist()}")
        if len(ids) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out: np.ndarray = self._index.reconstruct_batch(np.ascontiguousarray(ids))
        return out

    def knn(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored vectors to each query row.

        Returns:
            ``(similarities, ids)``, each ``(n_queries, k)``; missing neighbours have id ``-1``.
        """
        query = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        if query.shape[1] != self.dim:
            raise ValueError(f"queries must have {self.dim} columns, got {query.shape[1]}")
        if self.is_ivf:
            self._index.nprobe = self.nprobe
        sims, ids = self._index.search(query, k)
        return sims, ids

    def search_batched(
        self, queries: np.ndarray, k: int, batch_size: int = 8192
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`knn` for many query rows, ``batch_size`` at a time into preallocated outputs.

        Keeps FAISS's temporaries bounded (its distance blocks scale with the batch), so a whole
        pool can be searched at once.

        Returns:
            ``(similarities float32, ids int64)``, each ``(n_queries, k)``; missing neighbours have
            id ``-1``.
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries must have {self.dim} columns, got {queries.shape[1]}")
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(queries)
        sims = np.full((n, k), -np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        if k == 0 or n == 0 or self.ntotal == 0:
            return sims, ids
        if self.is_ivf:
            self._index.nprobe = self.nprobe
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            s, i = self._index.search(queries[start:stop], k)
            sims[start:stop] = s
            ids[start:stop] = i
        sims[ids < 0] = -np.inf
        return sims, ids

    def neighbours_of(
        self, ids: np.ndarray, k: int, batch_size: int = 8192
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar *other* stored vectors of each stored id (the id itself excluded).

        Searches ``k + 1`` and drops the id itself; where it is not among the hits (an IVF probe that
        missed it, or more than ``k`` exact duplicates) the last hit is dropped instead.

        Returns:
            ``(similarities, neighbour ids)``, each ``(len(ids), k)``, best first; id ``-1`` (and
            similarity ``-inf``) where fewer than ``k`` neighbours exist.

        Raises:
            KeyError: If an id is not stored.
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64).ravel()
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        sims, found = self.search_batched(self.get(ids), k + 1, batch_size)
        drop = found == ids[:, None]
        drop[~drop.any(axis=1), -1] = True  # exactly one dropped entry a row (ids are unique)
        keep = ~drop
        return sims[keep].reshape(len(ids), k), found[keep].reshape(len(ids), k)

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        ivf_threshold: int = 200_000,
        nprobe: int = DEFAULT_NPROBE,
    ) -> FaissIndex:
        """An index holding ``vectors`` under ``ids``, made in one go.

        The same index :meth:`add` ends with for these vectors (IVF through :func:`make_ivf` from
        ``ivf_threshold`` vectors, exact otherwise), without first filling a flat index.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D, got shape {vectors.shape}")
        index = cls(vectors.shape[1], ivf_threshold=ivf_threshold, nprobe=nprobe)
        ids, vectors = index._check(ids, vectors)
        if len(ids) >= ivf_threshold:
            index._index = make_ivf(ids, vectors, nprobe)
        else:
            index._index.add_with_ids(vectors, ids)
        index._sorted_ids = None
        return index

    def _rebuild_ivf(self) -> None:
        ids = self.ids()
        self._index = make_ivf(ids, self.get(ids), self.nprobe)
        self._sorted_ids = None

    def save(self, path: str | Path) -> None:
        """Write the index to ``path`` atomically (temp file then rename)."""
        faiss = _faiss()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".faiss")
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path, ivf_threshold: int = 200_000, nprobe: int = DEFAULT_NPROBE) -> FaissIndex:
        """Read an index written by :meth:`save`.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
        """
        faiss = _faiss()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no index file at {path}")
        raw = faiss.read_index(str(path))
        index = cls.__new__(cls)
        index.dim = raw.d
        index.ivf_threshold = ivf_threshold
        index.nprobe = nprobe
        if isinstance(raw, faiss.IndexIVF):
            raw.set_direct_map_type(faiss.DirectMap.Hashtable)
        index._index = raw
        index._sorted_ids = None
        return index
