"""A curator home: settings, the database and the blob store, opened together."""

from __future__ import annotations

from pathlib import Path

from curator.config import Settings
from curator.store.blobs import BlobStore
from curator.store.db import Database


class Workspace:
    """Everything a command or the API needs to reach stored data.

    Args:
        settings: Settings naming the home folder and database.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.blobs = BlobStore(settings.blob_root)

    def index_path(self, project_id: int, backbone: str) -> Path:
        """Where the FAISS index of a project under ``backbone`` is persisted."""
        return self.blobs.path(f"projects/{project_id}/index/{backbone}.faiss")

    def close(self) -> None:
        """Release database connections."""
        self.db.dispose()
