"""Rounds and external predictions over HTTP on a small project of real DAVIS frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api import create_app
from curator.annotate.masks import encode_rle
from curator.store.models import Frame, Project, Video
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, wait_job
from tests.conftest import DAVIS, DINOV2_CHECKPOINT

SIZE = (72, 128)  # (height, width): real frames, shrunk so a round takes seconds


def _project(workspace: Workspace, names: list[str], n: int) -> tuple[int, dict[str, list[int]], dict[str, list[np.ndarray]]]:
    """A project with one video per DAVIS sequence (``n`` frames each), classic embeddings, no labels."""
    from benchmarks.davis import load_davis
    from curator.embed import create_backbone
    from curator.store import repo

    seqs = load_davis(DAVIS, sequences=names)
    embedder = create_backbone("classic").backbone
    ids: dict[str, list[int]] = {}
    gts: dict[str, list[np.ndarray]] = {}
    with workspace.db.session() as session:
        project = Project(name="rounds")
        session.add(project)
        session.flush()
        for seq in seqs:
            video = Video(project_id=project.id, filename=seq.name, source_path="", content_hash=seq.name, size_bytes=0,
                          codec="jpeg", fps=24.0, width=SIZE[1], height=SIZE[0], duration=n / 24, decoded_frames=n,
                          sample_fps=0.0, sample_stride=1)
            session.add(video)
            session.flush()
            frames, rows = [], []
            for i in range(n):
                rgb = cv2.resize(seq.frame(i), (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
                blob = f"test/{seq.name}/{i:03d}.jpg"
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                assert ok
                workspace.blobs.write_bytes_atomic(blob, buf.tobytes())
                frames.append(rgb)
                rows.append(Frame(video_id=video.id, shot_id=None, frame_index=i, timestamp=i / 24, width=SIZE[1],
                                  height=SIZE[0], content_hash=f"{seq.name}-{i}", blob_path=blob))
                gts.setdefault(seq.name, []).append(
                    cv2.resize(seq.labels(i), (SIZE[1], SIZE[0]), interpolation=cv2.INTER_NEAREST) > 0
                )
            session.add_all(rows)
            session.flush()
            ids[seq.name] = [r.id for r in rows]
            repo.put_embeddings(session, np.array(ids[seq.name]), embedder.embed(frames), "classic")
        return project.id, ids, gts


@pytest.mark.skipif(not (DAVIS.exists() and DINOV2_CHECKPOINT.exists()), reason="needs ../shared DAVIS and DINOv2")
def test_round_end_to_end_over_http(tmp_path: Path) -> None:
    from curator.store import repo as api_repo

    settings = make_settings(tmp_path, backbone_checkpoint=str(DINOV2_CHECKPOINT))
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    pid, ids, gts = _project(workspace, ["blackswan", "cows"], 10)
    with workspace.db.session() as session:  # a person labelled two frames of blackswan
        for i in (0, 9):
            api_repo.store_human_masks(session, ids["blackswan"][i], [(1, encode_rle(gts["blackswan"][i]))])
    app = create_app(settings, workspace=workspace)
    with TestClient(app) as client:
        r = client.post(f"/projects/{pid}/rounds", json={"strategy": "nope"}, headers=admin)
        assert r.status_code == 422 and r.json()["code"] == "unknown_strategy"
        body = {"strategy": "curator", "budget": 3, "steps": 15, "short_side": 56, "propagator": "flow"}
        r = client.post(f"/projects/{pid}/rounds", json=body, headers=admin)
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"], admin, timeout=300)
        assert job["state"] == "succeeded", job
        result = job["result"]
        assert result["number"] == 1 and len(result["picks"]) == 3
        assert all(p["task_id"] for p in result["picks"])
        labelled = {ids["blackswan"][0], ids["blackswan"][9]}
        assert not labelled & {p["frame_id"] for p in result["picks"]}
        # dense labels: every frame of every video has masks from the best source, with provenance
        dense = result["metrics"]["dense"]
        assert dense["human"] == 2 and dense["propagated"] + dense["predicted"] == 18
        for frame_id in ids["blackswan"][1:9]:
            sources = {m["source"] for m in client.get(f"/frames/{frame_id}/annotations", headers=admin).json()["masks"]}
            assert sources <= {"propagated", "predicted"} and sources, frame_id
        assert client.get(f"/projects/{pid}/queue", headers=admin).json()["open"] == 3
        # the queued tasks are pre-annotated by a follow-up job: a round left masks on every frame it scored
        pre = wait_job(client, result["preannotate_job"], admin, timeout=120)
        assert pre["state"] == "succeeded" and pre["result"]["tasks"] == 3, pre
        with_masks = [p for p in result["picks"] if client.get(f"/tasks/{p['task_id']}", headers=admin).json()["pre_annotation"]]
        assert pre["result"]["pre_annotated"] == len(with_masks)
        rounds = client.get(f"/projects/{pid}/rounds", headers=admin).json()
        assert [r["number"] for r in rounds] == [1] and rounds[0]["state"] == "succeeded"
        assert rounds[0]["timings"]["train"] > 0 and rounds[0]["metrics"]["train_loss_last"] < rounds[0]["metrics"]["train_loss_first"]
        assert (settings.blob_root / rounds[0]["checkpoint"]).is_file()


@pytest.mark.skipif(not DAVIS.exists(), reason="needs ../shared DAVIS")
def test_external_predictions_change_the_next_selection(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    pid, ids, _ = _project(workspace, ["blackswan"], 8)
    frames = ids["blackswan"]
    app = create_app(settings, workspace=workspace)
    with TestClient(app) as client:
        def pick() -> list[int]:
            r = client.post(f"/projects/{pid}/selections", json={"strategy": "entropy", "budget": 1}, headers=admin)
            job = wait_job(client, r.json()["id"], admin)
            assert job["state"] == "succeeded", job
            return [p["frame_id"] for p in job["result"]["picks"]]

        before = pick()
        target = next(f for f in frames if f not in before)
        probs = np.full((2, 3, 3), 0.5).tolist()  # the user's model is unsure about `target` only
        sure = np.stack([np.ones((3, 3)), np.zeros((3, 3))]).tolist()
        payload = {"frames": [{"frame_id": f, "probabilities": probs if f == target else sure} for f in frames]}
        r = client.post(f"/projects/{pid}/predictions", json=payload, headers=admin)
        assert r.status_code == 201, r.text
        assert r.json()["frames"] == 8 and "entropy" in r.json()["names"]
        assert pick() == [target]
        # plain scores work too, and the newest value wins (not the largest): a frame the model was
        # sure about (entropy 0) gets a higher entropy than `target` and is picked, then a newer 0
        # hands the pick back to `target`
        other = next(f for f in frames if f != target)
        r = client.post(f"/projects/{pid}/predictions", json={"frames": [{"frame_id": other, "scores": {"entropy": 2.0}}]},
                        headers=admin)
        assert r.status_code == 201
        assert pick() == [other]
        r = client.post(f"/projects/{pid}/predictions", json={"frames": [{"frame_id": other, "scores": {"entropy": 0.0}}]},
                        headers=admin)
        assert r.status_code == 201
        assert pick() == [target]
        bad = client.post(f"/projects/{pid}/predictions", json={"frames": [{"frame_id": frames[0], "scores": {"nope": 1}}]},
                          headers=admin)
        assert bad.status_code == 422 and bad.json()["code"] == "unknown_score"
        missing = client.post(f"/projects/{pid}/predictions", json={"frames": [{"frame_id": 10**9, "scores": {"entropy": 1}}]},
                              headers=admin)
        assert missing.status_code == 422 and missing.json()["code"] == "unknown_frames"
