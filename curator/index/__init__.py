"""The FAISS store of a project's frame embeddings."""

from curator.index.faiss_store import FaissIndex

__all__ = ["FaissIndex"]
