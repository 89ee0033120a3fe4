"""A FAISS vector index per project, keyed by frame id, persisted to a file.

Vectors are L2-normalised, so inner product is cosine similarity. Small pools use an exact
``IndexIDMap2(IndexFlatIP)``. From ``ivf_threshold`` vectors (default 200,000, where one exact
query over 384-d vectors starts to cost tens of milliseconds on a CPU) the index is rebuilt as
``IndexIVFFlat`` with ``4 * sqrt(n)`` lists, searched with ``nprobe`` lists, which keeps queries in
the millisecond range at a small loss of recall. The IVF index takes frame ids natively and keeps a
hash-table direct map so ``get`` and ``remove`` still work by id.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _faiss() -> Any:
    import faiss

    return faiss


class FaissIndex:
    """Add, remove, get and search vectors by integer id.

    Args:
        dim: Vector length.
        ivf_threshold: Vector count from which :meth:`add` rebuilds the index as IVF.
        nprobe: IVF lists searched per query.
    """

    def __init__(self, dim: int, ivf_threshold: int = 200_000, nprobe: int = 16) -> None:
        faiss = _faiss()
        self.dim = dim
        self.ivf_threshold = ivf_threshold
        self.nprobe = nprobe
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

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
        stored = self.ids()
        return np.isin(np.asarray(ids, dtype=np.int64), stored)

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
        if not self.is_ivf and self.ntotal >= self.ivf_threshold:
            self._rebuild_ivf()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (unknown ones are ignored); returns how many were removed."""
        faiss = _faiss()
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        # the IVF hash-table direct map only accepts an explicit id array
        selector = faiss.IDSelectorArray(ids) if self.is_ivf else faiss.IDSelectorBatch(ids)
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
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for row, i in enumerate(ids.tolist()):
            out[row] = self._index.reconstruct(int(i))
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

    def _rebuild_ivf(self) -> None:
        faiss = _faiss()
        ids = self.ids()
        vectors = self.get(ids)
        # FAISS wants about 39 training points per list
        nlist = max(1, min(int(4 * np.sqrt(len(ids))), len(ids) // 39))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        ivf.add_with_ids(vectors, ids)
        ivf.nprobe = self.nprobe
        # the IVF index does not own its quantizer: hand ownership over so it lives as long as ivf
        quantizer.this.disown()
        ivf.own_fields = True
        self._index = ivf

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
    def load(cls, path: str | Path, ivf_threshold: int = 200_000, nprobe: int = 16) -> FaissIndex:
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
        return index
