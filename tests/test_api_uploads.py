"""Bad uploads and paths over HTTP: corrupt, truncated, empty, oversized, non-video, no file part,
paths outside the configured roots. Each gets 4xx and stores nothing (no video, job or file)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api import create_app
from curator.config import Settings
from curator.store.models import Job, Video
from curator.workspace import Workspace
from tests.api_fixtures import BEDROOM, VIDEOS, auth, make_settings, new_key, wait_job

pytestmark = pytest.mark.skipif(not BEDROOM.exists(), reason="needs ../shared/videos")


def _stored(workspace: Workspace, settings: Settings, pid: int) -> tuple[int, int, list[str]]:
    with workspace.db.session() as session:
        videos = int(session.scalar(select(func.count(Video.id))) or 0)
        jobs = int(session.scalar(select(func.count(Job.id))) or 0)
    uploads = settings.blob_root / f"projects/{pid}/uploads"
    files = sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []
    return videos, jobs, files


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Workspace, Settings, dict[str, str], int]]:
    roots = tmp_path / "roots"
    roots.mkdir()
    size = BEDROOM.stat().st_size
    settings = make_settings(tmp_path, upload_max_bytes=size - 1000, path_roots=[roots])
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    with TestClient(create_app(settings, workspace=workspace)) as client:
        pid = client.post("/projects", json={"name": "up"}, headers=admin).json()["id"]
        yield client, workspace, settings, admin, pid


def test_bad_uploads_get_4xx_and_store_nothing(
    env: tuple[TestClient, Workspace, Settings, dict[str, str], int], tmp_path: Path
) -> None:
    client, workspace, settings, admin, pid = env
    data = BEDROOM.read_bytes()
    dog = (VIDEOS / "01_dog.mp4").resolve().read_bytes()
    cases = {
        "non-video": (("notes.mp4", b"this is text, not a video\n" * 100), 415, "not_a_video"),
        "empty": (("empty.mp4", b""), 400, "empty_upload"),
        "truncated, index at the end": (("cut.mp4", data[: len(data) // 2]), 415, "not_a_video"),
        "truncated, index at the start": (("cut.mp4", dog[: len(dog) // 2]), 415, "not_a_video"),
        "garbage after a header": (("junk.mp4", data[:4096] + os.urandom(50_000)), 415, "not_a_video"),
        "png named mp4": (("img.mp4", b"\x89PNG\r\n\x1a\n" + os.urandom(1000)), 415, "not_a_video"),
        "oversized (streamed)": (("big.mp4", data), 413, "upload_too_large"),
        "oversized (declared)": (("big.mp4", data + data), 413, "upload_too_large"),
    }
    for name, ((filename, content), status, code) in cases.items():
        r = client.post(f"/projects/{pid}/videos", files={"file": (filename, content)}, headers=admin)
        assert r.status_code == status, (name, r.text)
        assert r.json()["code"] == code, name
        assert _stored(workspace, settings, pid) == (0, 0, []), name
    r = client.post(f"/projects/{pid}/videos", data={"other": "x"}, files={"notfile": ("a", b"abc")}, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "missing_file"
    r = client.post(f"/projects/{pid}/videos", content=b"raw", headers={**admin, "Content-Type": "video/mp4"})
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"
    r = client.post(f"/projects/{pid}/videos", content=b"--x\r\nbroken",
                    headers={**admin, "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code in (400, 422)
    r = client.post("/projects/999/videos", files={"file": ("a.mp4", data[:100])}, headers=admin)
    assert r.status_code == 404
    assert _stored(workspace, settings, pid) == (0, 0, [])


def test_paths_only_under_roots(
    env: tuple[TestClient, Workspace, Settings, dict[str, str], int], tmp_path: Path
) -> None:
    client, workspace, settings, admin, pid = env
    root = settings.path_roots[0]
    (root / "link.mp4").symlink_to(BEDROOM)  # a link out of the root does not count as inside it
    (root / "notes.mp4").write_text("not a video")
    shutil.copy(VIDEOS / "bikes.mp4", root / "bikes.mp4")
    refused = {
        str(BEDROOM): (403, "path_not_allowed"),
        str(root / ".." / ".." / "x.mp4"): (403, "path_not_allowed"),
        str(root / "link.mp4"): (403, "path_not_allowed"),
        str(root / "missing.mp4"): (404, "not_found"),
        str(root / "notes.mp4"): (415, "not_a_video"),
        "/etc/passwd": (403, "path_not_allowed"),
    }
    for path, (status, code) in refused.items():
        r = client.post(f"/projects/{pid}/videos/register", json={"path": path}, headers=admin)
        assert (r.status_code, r.json()["code"]) == (status, code), path
    assert _stored(workspace, settings, pid) == (0, 0, [])
    r = client.post(f"/projects/{pid}/videos/register", json={"path": str(root / "bikes.mp4")}, headers=admin)
    assert r.status_code == 202, r.text
    assert "path" not in r.json()["params"]
    job = wait_job(client, r.json()["id"], admin)
    assert job["state"] == "succeeded" and job["result"]["frames"] == 250
    assert (root / "bikes.mp4").exists()  # registered files are the owner's, never removed


def test_path_registration_off_without_roots(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    with TestClient(create_app(settings, workspace=workspace)) as client:
        pid = client.post("/projects", json={"name": "p"}, headers=admin).json()["id"]
        r = client.post(f"/projects/{pid}/videos/register", json={"path": str(BEDROOM)}, headers=admin)
        assert r.status_code == 403 and r.json()["code"] == "paths_disabled"
