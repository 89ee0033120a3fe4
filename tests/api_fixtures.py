"""Helpers for the API tests: settings in a temp folder, keys, synthetic frames, a live server."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI

from curator.annotate.masks import encode_rle
from curator.config import Settings, load_settings
from curator.store.keys import create_key
from curator.store.models import Frame, Project, Video
from curator.workspace import Workspace

VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "videos"
BEDROOM = (VIDEOS / "bedroom.mp4").resolve()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Fast settings for tests: classic backbone, small frames, home under ``tmp_path``, and no
    click-to-segment warming (its own tests turn it on)."""
    values: dict[str, Any] = {
        "home": tmp_path / "home", "backbone": "classic", "max_side": 320, "device": "cpu", "segment_warm": False,
    }
    values.update(overrides)
    return load_settings(None, **values)


def auth(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def new_key(workspace: Workspace, role: str = "admin", project_id: int | None = None) -> str:
    """Create an API key and return its secret."""
    with workspace.db.session() as session:
        _, secret = create_key(session, role, project_id)
    return secret


def seed_frames(
    workspace: Workspace, name: str, n_frames: int, size: tuple[int, int] = (24, 32), videos: int = 1
) -> tuple[int, list[int]]:
    """A project with synthetic videos and frames (one shared JPEG blob), no tasks. Returns ids."""
    height, width = size
    blob = "synthetic/frame.jpg"
    ok, buf = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    assert ok
    workspace.blobs.write_bytes_atomic(blob, buf.tobytes())
    frame_ids: list[int] = []
    with workspace.db.session() as session:
        project = Project(name=name)
        session.add(project)
        session.flush()
        per_video = -(-n_frames // videos)
        for v in range(videos):
            video = Video(
                project_id=project.id, filename=f"synthetic{v}.mp4", source_path="", content_hash=f"{name}-{v}",
                size_bytes=0, codec="none", fps=25.0, width=width, height=height, duration=per_video / 25,
                decoded_frames=per_video, sample_fps=0.0, sample_stride=1,
            )
            session.add(video)
            session.flush()
            count = min(per_video, n_frames - v * per_video)
            frames = [
                Frame(video_id=video.id, shot_id=None, frame_index=i, timestamp=i / 25, width=width, height=height,
                      content_hash=f"{name}-{v}-{i}", blob_path=blob)
                for i in range(count)
            ]
            session.add_all(frames)
            session.flush()
            frame_ids.extend(f.id for f in frames)
        return project.id, frame_ids


def seed_tasks(workspace: Workspace, name: str, n_tasks: int, size: tuple[int, int] = (24, 32)) -> int:
    """A project with ``n_tasks`` open tasks on synthetic frames; returns the project id."""
    from curator.store import repo

    project_id, frame_ids = seed_frames(workspace, name, n_tasks, size)
    with workspace.db.session() as session:
        repo.create_tasks(session, project_id, None, [(f, "test") for f in frame_ids])
    return project_id


def box_rle(height: int, width: int, top: int = 2, left: int = 3, h: int = 8, w: int = 10) -> dict[str, Any]:
    """COCO RLE of a filled rectangle on an ``height x width`` frame."""
    mask = np.zeros((height, width), bool)
    mask[top : top + h, left : left + w] = True
    return encode_rle(mask)


def wait_job(client: Any, job_id: int, headers: dict[str, str], timeout: float = 60.0) -> dict[str, Any]:
    """Poll ``GET /jobs/{id}`` until the job reaches a final state; return it."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("succeeded", "failed", "cancelled", "interrupted"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s: {job}")
        time.sleep(0.05)


class LiveServer:
    """Runs an app under uvicorn on a free loopback port in a thread (real HTTP, real concurrency).

    Args:
        app: The application.
    """

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def client(self, key: str) -> httpx.Client:
        """A keep-alive HTTP client with ``key``."""
        return httpx.Client(base_url=self.url, headers=auth(key), timeout=30)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_server(home: Path, log: Path | None = None, port: int | None = None) -> tuple[Any, str]:
    """``curator serve --home HOME`` in a subprocess on loopback (classic backbone, small frames, no
    segmenter preload); returns the process and its URL without waiting for it (see
    :func:`wait_healthy`)."""
    import os
    import subprocess
    import sys

    port = port or free_port()
    script = Path(sys.executable).parent / "curator"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "curator"]
    # no click-to-segment preload: its imports (torch, hundreds of MB) would land in the middle of
    # what tests measure of the server, as they do for make_settings' in-process apps
    env = {
        **os.environ, "CURATOR_BACKBONE": "classic", "CURATOR_MAX_SIDE": "320", "CURATOR_DEVICE": "cpu",
        "CURATOR_SEGMENT_WARM": "false",
    }
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            [*command, "serve", "--home", str(home), "--port", str(port), "--log-level", "warning"],
            env=env, cwd=Path(__file__).resolve().parents[1], stdout=out, stderr=out,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: Any, url: str, log: Path | None = None, timeout: float = 60.0) -> None:
    """Wait until the server answers ``/health``; kill it and raise (with its log) if it cannot."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            detail = log.read_text() if log is not None and log.exists() else ""
            raise RuntimeError(f"the server did not start:\n{detail}")
        time.sleep(0.1)


def start_server(home: Path, log: Path | None = None) -> tuple[Any, str]:
    """:func:`spawn_server` and wait until it is healthy."""
    process, url = spawn_server(home, log)
    wait_healthy(process, url, log)
    return process, url


def annotate_until(
    url: str, project_id: int, key: str, body: dict[str, Any], stop: threading.Event,
    acknowledged: list[tuple[int, int]], lock: threading.Lock,
) -> None:
    """One annotator claiming two tasks at a time and submitting ``body`` until ``stop`` or the server
    goes away; records ``(task id, frame id)`` of every submission answered 200."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=5) as http:
        while not stop.is_set():
            try:
                tasks = http.post(f"/projects/{project_id}/queue/claim", json={"limit": 2}).json()["tasks"]
                for task in tasks:
                    if http.post(f"/tasks/{task['id']}/submit", json=body).status_code == 200:
                        with lock:
                            acknowledged.append((task["id"], task["frame_id"]))
            except (httpx.HTTPError, ValueError, KeyError):
                return
