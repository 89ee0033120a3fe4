"""Blob files beside the database: frame JPEGs, masks and index files, addressed by relative path."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import cv2
import numpy as np


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file (a stored frame JPEG) as RGB uint8.

    Raises:
        FileNotFoundError: If the file is missing or not a readable image.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def host_tag() -> str:
    """This machine's name as it may appear in a file name (letters, digits and ``_``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


class BlobStore:
    """Files under one root folder. Paths handed out and stored in the database are relative.

    Args:
        root: Folder holding every blob; created if missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, relative: str | Path) -> Path:
        """Absolute path of a stored blob.

        Raises:
            ValueError: If ``relative`` would escape the blob root.
        """
        full = (self.root / relative).resolve()
        if not full.is_relative_to(self.root.resolve()):
            raise ValueError(f"blob path {relative!s} escapes the blob root")
        return full

    def staging_dir(self, prefix: str) -> Path:
        """A fresh folder under the root for writing blobs that are committed later by a rename.

        Its name is ``<prefix><pid>.<host>-<random>``: the start-up sweep removes the folders of
        processes of its host that are gone (see :func:`curator.jobs.sweep.sweep_orphans`); blobs may
        be shared by several machines, whose pids mean nothing elsewhere.
        """
        staging = self.root / ".staging"
        staging.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.{host_tag()}-", dir=staging))

    def commit_dir(self, staging: Path, relative: str | Path) -> Path:
        """Move a staging folder to its final relative location (atomic on one filesystem)."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        return target

    def remove(self, relative: str | Path) -> None:
        """Delete a blob file or folder if present."""
        target = self.path(relative)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists():
            target.unlink()

    def write_bytes_atomic(self, relative: str | Path, data: bytes) -> Path:
        """Write ``data`` to a temp file and rename it into place, so readers never see half a file."""
        return write_file_atomic(self.path(relative), data)


def write_file_atomic(target: Path, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``target`` and rename it into place (parents created), so
    readers in any process see the old file or the whole new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:  # a full disk, say: no half-written temp file stays behind
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
