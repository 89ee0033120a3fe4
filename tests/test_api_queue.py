"""The labelling queue over HTTP: atomic claims under 8 concurrent clients, leases that expire,
release, and submissions that are validated (size, ids, RLE, PNG) and store nothing when refused."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from sqlalchemy import func, select

from api import create_app
from curator.annotate.masks import DAVIS_PALETTE, decode_rle, encode_rle
from curator.labels.masks import encode_counts, rle_counts
from curator.store.models import Annotation
from curator.workspace import Workspace
from tests.api_fixtures import LiveServer, auth, box_rle, make_settings, new_key, seed_tasks

H, W = 24, 32


def _annotations(workspace: Workspace) -> int:
    with workspace.db.session() as session:
        return int(session.scalar(select(func.count(Annotation.id))) or 0)


@pytest.fixture
def queue(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[TestClient, Workspace, int]]:
    # leases are long unless a test asks for short ones to watch them expire (a slow machine must
    # not expire a lease in the middle of a test that relies on holding it)
    lease_seconds = float(getattr(request, "param", 60.0))
    settings_ = make_settings(tmp_path, lease_seconds=lease_seconds, claim_max=50)
    workspace = Workspace(settings_)
    project_id = seed_tasks(workspace, "q", 6, (H, W))
    with TestClient(create_app(settings_, workspace=workspace)) as client:
        yield client, workspace, project_id


@pytest.mark.parametrize("queue", [0.5], indirect=True)
def test_claim_leases_each_task_once_and_expired_leases_return(queue: tuple[TestClient, Workspace, int]) -> None:
    client, workspace, pid = queue
    a = auth(new_key(workspace, "annotator", pid))
    b = auth(new_key(workspace, "annotator", pid))
    first = client.post(f"/projects/{pid}/queue/claim", json={"limit": 4}, headers=a).json()
    assert len(first["tasks"]) == 4 and first["lease_seconds"] == 0.5
    second = client.post(f"/projects/{pid}/queue/claim", json={"limit": 4}, headers=b).json()["tasks"]
    assert len(second) == 2
    assert not {t["id"] for t in first["tasks"]} & {t["id"] for t in second}
    assert client.post(f"/projects/{pid}/queue/claim", json={"limit": 4}, headers=b).json()["tasks"] == []
    assert client.post(f"/projects/{pid}/queue/claim", json={"limit": 51}, headers=a).json()["code"] == "limit_too_large"
    assert client.post(f"/projects/{pid}/queue/claim", json={"limit": 0}, headers=a).status_code == 422

    time.sleep(0.6)
    counts = client.get(f"/projects/{pid}/queue", headers=a).json()
    assert counts == {"open": 0, "leased": 0, "expired": 6, "done": 0, "total": 6}
    stale = first["tasks"][0]["id"]
    body = {"masks": [{"object_id": 1, "rle": box_rle(H, W)}]}
    r = client.post(f"/tasks/{stale}/submit", json=body, headers=a)
    assert r.status_code == 409 and r.json()["code"] == "lease_expired"
    assert _annotations(workspace) == 0
    # expired leases go back to the pool: b now gets all six, a's late submission is refused
    again = client.post(f"/projects/{pid}/queue/claim", json={"limit": 10}, headers=b).json()["tasks"]
    assert len(again) == 6
    assert client.post(f"/tasks/{stale}/submit", json=body, headers=a).json()["code"] == "lease_not_held"
    assert client.post(f"/tasks/{stale}/submit", json=body, headers=b).status_code == 200
    assert client.post(f"/tasks/{stale}/submit", json=body, headers=b).json()["code"] == "task_done"
    assert _annotations(workspace) == 1


def test_release(queue: tuple[TestClient, Workspace, int]) -> None:
    client, workspace, pid = queue
    a = auth(new_key(workspace, "annotator", pid))
    b = auth(new_key(workspace, "annotator", pid))
    task = client.post(f"/projects/{pid}/queue/claim", json={"limit": 1}, headers=a).json()["tasks"][0]
    assert client.post(f"/tasks/{task['id']}/release", headers=b).json()["code"] == "lease_not_held"
    r = client.post(f"/tasks/{task['id']}/release", headers=a)
    assert r.status_code == 200 and r.json()["state"] == "open"
    assert client.post(f"/tasks/{task['id']}/release", headers=a).status_code == 409
    assert client.post("/tasks/12345/release", headers=a).status_code == 404
    assert client.get(f"/projects/{pid}/queue", headers=a).json()["open"] == 6


def test_submissions_are_validated_and_refusals_store_nothing(queue: tuple[TestClient, Workspace, int]) -> None:
    client, workspace, pid = queue
    a = auth(new_key(workspace, "annotator", pid))
    tasks = client.post(f"/projects/{pid}/queue/claim", json={"limit": 6}, headers=a).json()["tasks"]
    tid = tasks[0]["id"]
    bad_bodies = {
        "wrong size": {"masks": [{"object_id": 1, "rle": box_rle(H + 1, W)}]},
        "duplicate ids": {"masks": [{"object_id": 1, "rle": box_rle(H, W)}, {"object_id": 1, "rle": box_rle(H, W)}]},
        "bad alphabet": {"masks": [{"object_id": 1, "rle": {"size": [H, W], "counts": "~~~~"}}]},
        "short counts": {"masks": [{"object_id": 1, "rle": {"size": [H, W], "counts": "0"}}]},
        "long counts": {"masks": [{"object_id": 1, "rle": {"size": [H, W], "counts": [H * W, 5]}}]},
        "negative runs": {"masks": [{"object_id": 1, "rle": {"size": [H, W], "counts": [H * W + 1, -1]}}]},
        "id zero": {"masks": [{"object_id": 0, "rle": box_rle(H, W)}]},
        "id 256": {"masks": [{"object_id": 256, "rle": box_rle(H, W)}]},
        "both": {"masks": [{"object_id": 1, "rle": box_rle(H, W)}], "label_png": "AAAA"},
        "png not base64": {"label_png": "%%%"},
        "png garbage": {"label_png": base64.b64encode(b"not a png").decode()},
        "extra field": {"masks": [], "whatever": 1},
    }
    for name, body in bad_bodies.items():
        r = client.post(f"/tasks/{tid}/submit", json=body, headers=a)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["code"] in ("invalid_mask", "validation_error"), name
    png = io.BytesIO()
    Image.fromarray(np.zeros((H + 2, W), np.uint8), mode="L").save(png, format="PNG")
    r = client.post(f"/tasks/{tid}/submit", json={"label_png": base64.b64encode(png.getvalue()).decode()}, headers=a)
    assert r.status_code == 422 and "frame is" in r.json()["detail"]
    assert _annotations(workspace) == 0
    assert client.get(f"/projects/{pid}/queue", headers=a).json()["leased"] == 6

    # an indexed PNG with two objects
    labels = np.zeros((H, W), np.uint8)
    labels[2:8, 2:9] = 1
    labels[10:20, 12:30] = 2
    png = io.BytesIO()
    image = Image.fromarray(labels, mode="P")
    image.putpalette(DAVIS_PALETTE)
    image.save(png, format="PNG")
    r = client.post(f"/tasks/{tid}/submit", json={"label_png": base64.b64encode(png.getvalue()).decode()}, headers=a)
    assert r.status_code == 200 and r.json()["masks"] == 2, r.text
    stored = client.get(f"/frames/{tasks[0]['frame_id']}/annotations", headers=a).json()["masks"]
    assert [m["source"] for m in stored] == ["human", "human"]
    assert (decode_rle(stored[1]["rle"]) == (labels == 2)).all()

    # uncompressed counts are stored compressed and decode to the same mask
    mask = np.zeros((H, W), bool)
    mask[3:9, 4:20] = True
    flat = mask.T.ravel().astype(int)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.r_[0, changes, flat.size]
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0, *runs]
    r = client.post(f"/tasks/{tasks[1]['id']}/submit",
                    json={"masks": [{"object_id": 3, "rle": {"size": [H, W], "counts": runs}}]}, headers=a)
    assert r.status_code == 200, r.text
    stored = client.get(f"/frames/{tasks[1]['frame_id']}/annotations", headers=a).json()["masks"]
    assert isinstance(stored[0]["rle"]["counts"], str) and (decode_rle(stored[0]["rle"]) == mask).all()
    # an empty submission says the frame shows nothing; it completes the task
    assert client.post(f"/tasks/{tasks[2]['id']}/submit", json={"masks": []}, headers=a).json()["masks"] == 0
    assert client.get(f"/projects/{pid}/queue", headers=a).json()["done"] == 3


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_rle_codec_matches_pycocotools(mask: np.ndarray) -> None:
    rle = encode_rle(mask)
    runs = rle_counts(rle["counts"])
    assert sum(runs) == mask.size and all(r >= 0 for r in runs)
    assert encode_counts(runs) == rle["counts"]


def test_eight_clients_claim_and_submit_400_tasks_none_twice_none_lost(tmp_path: Path) -> None:
    settings_ = make_settings(tmp_path)
    workspace = Workspace(settings_)
    pid = seed_tasks(workspace, "burst", 400, (H, W))
    keys = [new_key(workspace, "annotator", pid) for _ in range(8)]
    claimed: list[list[int]] = [[] for _ in keys]
    submitted: list[list[int]] = [[] for _ in keys]
    failures: list[str] = []
    body = {"masks": [{"object_id": 1, "rle": box_rle(H, W)}]}

    with LiveServer(create_app(settings_, workspace=workspace)) as server:
        gate = threading.Barrier(len(keys))

        def annotate(i: int) -> None:
            rng = np.random.default_rng(i)
            with server.client(keys[i]) as http:
                gate.wait()
                while True:
                    r = http.post(f"/projects/{pid}/queue/claim", json={"limit": int(rng.integers(1, 6))})
                    if r.status_code != 200:
                        failures.append(r.text)
                        return
                    tasks = r.json()["tasks"]
                    if not tasks:
                        return
                    for task in tasks:
                        claimed[i].append(task["id"])
                        s = http.post(f"/tasks/{task['id']}/submit", json=body)
                        if s.status_code == 200:
                            submitted[i].append(task["id"])
                        else:
                            failures.append(s.text)

        threads = [threading.Thread(target=annotate, args=(i,)) for i in range(len(keys))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        with server.client(keys[0]) as http:
            counts = http.get(f"/projects/{pid}/queue").json()
    all_claimed = [t for per in claimed for t in per]
    assert not failures
    assert len(all_claimed) == len(set(all_claimed)) == 400  # no task leased twice, none lost
    assert sum(len(s) for s in submitted) == 400
    assert sum(1 for per in claimed if per) >= 2  # the work really was shared
    assert counts == {"open": 0, "leased": 0, "expired": 0, "done": 400, "total": 400}
    assert _annotations(workspace) == 400
