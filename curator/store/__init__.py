"""Storage: SQLAlchemy models and repositories (SQLite by default), and blob files beside them."""

from curator.store.blobs import BlobStore
from curator.store.db import Database
from curator.store.models import (
    Annotation,
    Base,
    Embedding,
    Frame,
    Project,
    SelectionItem,
    SelectionRun,
    Shot,
    Video,
)
from curator.store.repo import NotFoundError

__all__ = [
    "Annotation",
    "Base",
    "BlobStore",
    "Database",
    "Embedding",
    "Frame",
    "NotFoundError",
    "Project",
    "SelectionItem",
    "SelectionRun",
    "Shot",
    "Video",
]
