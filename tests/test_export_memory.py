"""Exports stream: the peak memory of a 20,000-frame export is that of a 2,000-frame one, for every
format (each zip with its images). Run with --runslow; the figures are printed (-s shows them).

Each export runs in a fresh process (``curator export``'s code path, :func:`curator.export.write_export`)
whose resident set size is sampled every 5 ms while it writes: the figure is the peak above the
size before it started (with curator and the export's imports loaded). The project is synthetic (small
frames sharing one JPEG, two objects per frame, human and propagated masks) and written straight into
the database so that building it takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import insert, select

import curator
from conftest import REPO_ROOT
from curator.annotate.masks import encode_rle
from curator.store.models import Annotation, Frame, Video

FRAMES = (2_000, 20_000)
VIDEOS = 4
SIZE = (24, 32)
#: How much more a 20,000-frame export may grow the process than a 2,000-frame one and count as flat.
FLAT_MB = 16.0

_MEASURE = """
import sys, threading, time
from pathlib import Path
import psutil
import curator
import PIL.Image, pycocotools.mask, curator.annotate.masks  # what the exports import on first use
from curator.export import write_export
home = curator.open(sys.argv[1], backbone="classic", device="cpu", notice=lambda _m: None)
project = home.project("big")
me = psutil.Process()
base = peak = me.memory_info().rss
done = False
def sample():
    global peak
    while not done:
        peak = max(peak, me.memory_info().rss)
        time.sleep(0.005)
watcher = threading.Thread(target=sample)
watcher.start()
write_export(home.workspace, project.id, sys.argv[2], "all", Path(sys.argv[3]), images=True)
done = True
watcher.join()
print(base, max(peak, me.memory_info().rss))
"""

def seed(home_dir: Path, n_frames: int) -> None:
    """A project ``big`` of ``n_frames`` frames in ``VIDEOS`` videos, every frame with two masks."""
    home = curator.open(home_dir, backbone="classic", device="cpu", notice=lambda _m: None)
    project = home.project("big")
    height, width = SIZE
    blob = "synthetic/frame.jpg"
    home.workspace.blobs.write_bytes_atomic(blob, cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))[1].tobytes())
    one, two = np.zeros(SIZE, bool), np.zeros(SIZE, bool)
    one[2:10, 3:12], two[12:20, 15:30] = True, True
    rles = {1: encode_rle(one), 2: encode_rle(two)}
    per_video = n_frames // VIDEOS
    with home.workspace.db.session() as session:
        for v in range(VIDEOS):
            video = Video(project_id=project.id, filename=f"long{v}.mp4", source_path="", content_hash=f"big-{v}",
                          size_bytes=0, codec="none", fps=25.0, width=width, height=height, duration=per_video / 25,
                          decoded_frames=per_video, sample_fps=0.0, sample_stride=1)
            session.add(video)
            session.flush()
            session.execute(insert(Frame), [
                {"video_id": video.id, "shot_id": None, "frame_index": i, "timestamp": i / 25, "width": width,
                 "height": height, "content_hash": f"big-{v}-{i}", "blob_path": blob} for i in range(per_video)])
            ids = session.scalars(select(Frame.id).where(Frame.video_id == video.id).order_by(Frame.frame_index)).all()
            session.execute(insert(Annotation), [
                {"frame_id": fid, "object_id": k, "source": "human" if n % 10 == 0 else "propagated",
                 "rle": rles[k], "confidence": 1.0 if n % 10 == 0 else 0.5}
                for n, fid in enumerate(ids) for k in (1, 2)])
    home.close()


def growth_mb(home_dir: Path, fmt: str, dest: Path) -> float:
    """Peak RSS above the starting RSS of one export, in MB."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "selectors")])}
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(home_dir), fmt, str(dest)], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    base, peak = (int(v) for v in done.stdout.split()[-2:])
    return (peak - base) / 2**20


@pytest.mark.slow
def test_export_memory_stays_flat_from_2000_to_20000_frames(tmp_path: Path) -> None:
    homes = {}
    for n in FRAMES:
        homes[n] = tmp_path / f"home-{n}"
        seed(homes[n], n)
    rows = []
    for fmt in ("coco", "davis", "ytvis", "datumaro", "labelstudio"):
        peaks = [growth_mb(homes[n], fmt, tmp_path / f"{fmt}-{n}.zip") for n in FRAMES]
        rows.append((fmt, *peaks))
        print(f"export {fmt:<12} RSS growth while exporting: {peaks[0]:6.1f} MB at {FRAMES[0]} frames, "
              f"{peaks[1]:6.1f} MB at {FRAMES[1]}")
    for fmt, small, big in rows:
        assert big - small < FLAT_MB, f"{fmt}: {small:.1f} MB at {FRAMES[0]} frames, {big:.1f} MB at {FRAMES[1]}"
    assert (tmp_path / f"davis-{FRAMES[1]}.zip").stat().st_size > 0
