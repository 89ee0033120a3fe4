"""The whole path over HTTP against the real app and a real SQLite file: project, upload, ingest,
select, claim, submit, propagate, export (COCO loads with pycocotools, with the right counts)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pycocotools.coco import COCO

from api import create_app
from curator.workspace import Workspace
from tests.api_fixtures import BEDROOM, auth, box_rle, make_settings, new_key, wait_job


@pytest.mark.skipif(not BEDROOM.exists(), reason="needs ../shared/videos/bedroom.mp4")
def test_full_path_over_http(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    app = create_app(settings, workspace=workspace)
    with TestClient(app) as client:
        # project
        r = client.post("/projects", json={"name": "bedroom"}, headers=admin)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        annotator = auth(new_key(workspace, "annotator", pid))

        # upload -> 202 with an ingest job -> done
        with BEDROOM.open("rb") as handle:
            r = client.post(f"/projects/{pid}/videos", files={"file": ("../../etc/bed room.mp4", handle)},
                            headers=admin)
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/jobs/{r.json()['id']}"
        job = wait_job(client, r.json()["id"], admin)
        assert job["state"] == "succeeded", job
        assert job["progress"]["done"] == job["progress"]["total"] > 0
        assert job["run_s"] is not None and job["run_s"] > 0
        n_frames = job["result"]["frames"]
        assert n_frames == 200 and job["result"]["embedded"] == 200
        videos = client.get(f"/projects/{pid}/videos", headers=admin).json()
        assert videos[0]["filename"] == "bed room.mp4"  # the client's path is never used
        uploads = settings.blob_root / f"projects/{pid}/uploads"
        assert not any(uploads.iterdir())  # the upload is removed once ingested

        # select 8 -> job -> picks with reasons -> tasks
        r = client.post(f"/projects/{pid}/selections", json={"strategy": "kcenter", "budget": 8}, headers=admin)
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"], admin)
        assert job["state"] == "succeeded", job
        selection = client.get(f"/selections/{job['result']['selection_id']}", headers=admin).json()
        assert len(selection["picks"]) == 8
        assert all(p["reason"] and p["task_id"] for p in selection["picks"])
        assert client.get(f"/projects/{pid}/queue", headers=admin).json() == {
            "open": 8, "leased": 0, "expired": 0, "done": 0, "total": 8
        }

        # claim all 8
        r = client.post(f"/projects/{pid}/queue/claim", json={"limit": 10}, headers=annotator)
        assert r.status_code == 200, r.text
        tasks = r.json()["tasks"]
        assert len(tasks) == 8
        assert client.post(f"/projects/{pid}/queue/claim", json={"limit": 10}, headers=annotator).json()["tasks"] == []

        # task detail, frame image (with caching) and thumbnail
        detail = client.get(f"/tasks/{tasks[0]['id']}", headers=annotator).json()
        height, width = detail["frame"]["height"], detail["frame"]["width"]
        assert (height, width) == (180, 320)
        assert detail["neighbours"] and detail["pre_annotation"] == []
        image = client.get(detail["image_url"], headers=annotator)
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert "max-age" in image.headers["cache-control"]
        assert client.get(detail["image_url"], headers={**annotator, "If-None-Match": image.headers["etag"]}).status_code == 304
        thumb = client.get(detail["frame"]["thumb_url"], headers=annotator)
        assert thumb.status_code == 200
        assert max(Image.open(io.BytesIO(thumb.content)).size) <= settings.thumb_side

        # submit masks: two objects per frame; the last submission triggers propagation
        tasks.sort(key=lambda t: t["frame_index"])
        for i, task in enumerate(tasks):
            masks = [
                {"object_id": 1, "rle": box_rle(height, width, 20, 30, 60, 80)},
                {"object_id": 2, "rle": box_rle(height, width, 100, 200, 40, 50)},
            ]
            body = {"masks": masks, "propagate": i == len(tasks) - 1}
            r = client.post(f"/tasks/{task['id']}/submit", json=body, headers=annotator)
            assert r.status_code == 200, r.text
            assert r.json()["masks"] == 2
        prop = r.json()["propagate_job"]
        assert prop is not None and prop["kind"] == "propagate"
        job = wait_job(client, prop["id"], admin, timeout=120)
        assert job["state"] == "succeeded", job
        propagated_frames = job["result"]["frames"]
        # the default scope is the whole video: every stored frame but the 8 keyframes
        assert propagated_frames == n_frames - 8
        assert client.get(f"/projects/{pid}/queue", headers=admin).json()["done"] == 8
        # the whole project at once: one part per video with human masks, the same frames again
        r = client.post(f"/projects/{pid}/propagate", json={}, headers=admin)
        assert r.status_code == 202, r.text
        whole = wait_job(client, r.json()["id"], admin, timeout=120)
        assert whole["state"] == "succeeded", whole
        assert whole["result"]["frames"] == propagated_frames and len(whole["result"]["videos"]) == 1

        # a frame between keyframes now has a pre-annotation with confidence
        first, last = tasks[0]["frame_index"], tasks[-1]["frame_index"]
        between = next(f for f in range(first + 1, last) if f not in {t["frame_index"] for t in tasks})
        frames = client.get(f"/tasks/{tasks[0]['id']}?neighbours=20", headers=admin).json()["neighbours"]
        some = next((f for f in frames if f["frame_index"] == between), frames[-1])
        masks = client.get(f"/frames/{some['id']}/annotations", headers=admin).json()["masks"]
        assert masks and {m["source"] for m in masks} <= {"propagated", "human"}
        assert all(0.0 <= m["confidence"] <= 1.0 for m in masks)

        # export COCO (human): 8 images, 16 annotations, loads with pycocotools
        r = client.get(f"/projects/{pid}/export?format=coco&include=human&images=false", headers=admin)
        assert r.status_code == 200, r.text
        path = tmp_path / "coco.json"
        path.write_bytes(r.content)
        coco = COCO(str(path))
        assert len(coco.getImgIds()) == 8
        assert len(coco.getAnnIds()) == 16
        ann = coco.loadAnns(coco.getAnnIds())[0]
        assert coco.annToMask(ann).sum() == ann["area"] > 0

        # export COCO (all): keyframes plus the propagated frames
        r = client.get(f"/projects/{pid}/export?format=coco&include=all&images=false", headers=admin)
        path.write_bytes(r.content)
        coco = COCO(str(path))
        assert 8 < len(coco.getImgIds()) <= 8 + propagated_frames
        # only labelled frames go out: every exported image carries a mask
        assert all(coco.getAnnIds(imgIds=[i]) for i in coco.getImgIds())

        # YouTube-VIS and DAVIS
        ytvis = client.get(f"/projects/{pid}/export?format=ytvis&include=human&images=false", headers=admin).json()
        assert len(ytvis["videos"]) == 1 and ytvis["videos"][0]["length"] == 8
        assert len(ytvis["annotations"]) == 2
        assert all(s is not None for s in ytvis["annotations"][0]["segmentations"])
        r = client.get(f"/projects/{pid}/export?format=davis&include=human", headers=admin)
        assert r.headers["content-type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(r.content))
        pngs = [n for n in archive.namelist() if n.startswith("Annotations/")]
        jpgs = [n for n in archive.namelist() if n.startswith("JPEGImages/")]
        assert len(pngs) == len(jpgs) == 8
        labels = np.array(Image.open(io.BytesIO(archive.read(pngs[0]))))
        assert set(np.unique(labels)) == {0, 1, 2}
        index = json.loads(archive.read("frames.json"))
        assert len(index["frames"]) == 8

        # delete asks for confirmation, then removes rows and files
        assert client.delete(f"/projects/{pid}", headers=admin).json()["code"] == "confirmation_required"
        assert client.delete(f"/projects/{pid}?confirm=bedroom", headers=admin).status_code == 204
        assert client.get(f"/projects/{pid}", headers=admin).status_code == 404
        assert not (settings.blob_root / f"projects/{pid}").exists()
