"""The project view's routes: overview, a video's timeline, the embedding map, the round history and
queueing frames by id (shapes, values, errors, roles), and per-upload sampling options (fps, stride)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from api import create_app
from curator.store import repo
from curator.store.models import Embedding, Frame, Job, Task, Video
from curator.views import pca_2d
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_frames, wait_job
from tests.view_fixtures import ViewProject, seed_view_project, write_clip


@dataclass
class Env:
    client: TestClient
    workspace: Workspace
    seeded: ViewProject
    admin: dict[str, str]
    viewer: dict[str, str]
    annotator: dict[str, str]
    other: dict[str, str]  # an admin key of another project
    other_project: int


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    settings = make_settings(tmp_path, preannotate=False)
    workspace = Workspace(settings)
    seeded = seed_view_project(workspace)
    other_project, _ = seed_frames(workspace, "elsewhere", 3)
    keys = [auth(new_key(workspace, role)) for role in ("admin", "viewer", "annotator")]
    other = auth(new_key(workspace, "admin", other_project))
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield Env(client, workspace, seeded, *keys, other, other_project)
    workspace.close()


def test_overview_lists_videos_shots_picks_and_the_queue(env: Env) -> None:
    s = env.seeded
    # an annotator labels one pick: the queue and the per-annotator counts show it
    claimed = env.client.post(f"/projects/{s.project_id}/queue/claim", json={"limit": 2}, headers=env.annotator).json()
    task = claimed["tasks"][0]
    mask = {"object_id": 1, "rle": {"size": [120, 160], "counts": [0, 40, 19160]}}
    assert env.client.post(f"/tasks/{task['id']}/submit", json={"masks": [mask]}, headers=env.annotator).status_code == 200

    answer = env.client.get(f"/projects/{s.project_id}/overview", headers=env.viewer)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["project"] == {"id": s.project_id, "name": "view"}
    assert body["totals"] == {"videos": 2, "frames": 24, "shots": 3, "labelled_frames": 2, "picks": 4, "selections": 1}
    first, second = body["videos"]
    assert [v["id"] for v in body["videos"]] == s.videos
    assert [(sh["index"], sh["frames"]) for sh in first["shots"]] == [(0, 6), (1, 6)]
    assert [sh["frames"] for sh in second["shots"]] == [12]
    picks = [p for v in body["videos"] for p in v["picks"]]
    assert sorted(p["frame_id"] for p in picks) == sorted(s.picks)
    assert all(p["reason"] == "uniform" and p["utility"] >= 0 and p["task_id"] for p in picks)
    states = {p["frame_id"]: p["task_state"] for p in picks}
    assert states[task["frame_id"]] == "done" and states[claimed["tasks"][1]["frame_id"]] == "leased"
    assert body["queue"] == {"open": 2, "leased": 1, "expired": 0, "done": 1, "total": 4}
    (annotator,) = body["annotators"]
    assert (annotator["leased"], annotator["done"]) == (1, 1) and annotator["prefix"]
    # the human frame of video 0 (0.6 s) and the frame just labelled are on the timelines
    labelled = sorted(t for v in body["videos"] for t in v["labelled"])
    assert 0.6 in labelled and len(labelled) == 2
    assert body["selections"][0]["picks"] == 4 and body["selections"][0]["round"] == 2
    assert body["picks_truncated"] is False


def test_timeline_has_the_confidence_curve_keyframes_and_tasks(env: Env) -> None:
    s = env.seeded
    video = s.videos[0]
    answer = env.client.get(f"/projects/{s.project_id}/videos/{video}/timeline", headers=env.viewer)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    frames = body["frames"]
    assert frames["id"] == s.frames[video]
    assert {len(column) for column in frames.values()} == {12}
    assert frames["frame_index"] == list(range(0, 60, 5))
    assert body["keyframes"] == [s.human_frame]
    i = frames["id"].index(s.human_frame)
    assert (frames["source"][i], frames["confidence"][i], frames["objects"][i]) == ("human", 1.0, 2)
    j = frames["id"].index(s.propagated_frame)
    assert (frames["source"][j], frames["confidence"][j]) == ("propagated", 0.4)  # the lowest object confidence
    assert body["sources"] == {"human": 1, "propagated": 11, "predicted": 0, "rejected": 0}
    queued = {p["frame_id"] for p in body["picks"]}
    assert queued <= set(s.frames[video])
    assert [frames["task"][frames["id"].index(f)] for f in queued] == ["open"] * len(queued)
    assert [sh["start_time"] for sh in body["shots"]] == [0.0, 1.2]
    # the other video has no masks at all
    other = env.client.get(f"/projects/{s.project_id}/videos/{s.videos[1]}/timeline", headers=env.viewer).json()
    assert set(other["frames"]["source"]) == {None} and other["keyframes"] == []


def test_embedding_map_is_a_cached_pca_of_every_embedded_frame(env: Env) -> None:
    s = env.seeded
    url = f"/projects/{s.project_id}/embedding-map"
    first = env.client.get(url, headers=env.viewer).json()
    all_frames = [f for v in s.videos for f in s.frames[v]]
    assert first["count"] == 24 and sorted(first["frame_id"]) == sorted(all_frames)
    assert first["backbone"] == "classic" and first["cached"] is False and first["reason"] is None
    assert {len(first[k]) for k in ("frame_id", "x", "y", "video_id", "shot_id", "labelled", "picked", "queued")} == {24}
    xy = np.column_stack([first["x"], first["y"]])
    assert xy.min() >= 0 and xy.max() <= 1
    # the same projection as an independent PCA (SVD), up to the sign of each axis and one scale
    with env.workspace.db.session() as session:
        ids, vectors = repo.get_embeddings(session, s.project_id, "classic")
    assert ids.tolist() == first["frame_id"]
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    for axis in range(2):
        r = np.corrcoef(xy[:, axis], centred @ vt[axis])[0, 1]
        assert abs(r) > 0.999, (axis, r)
    # flags: the human frame is labelled, every pick is picked and queued
    flags = {f: (lab, pick, q) for f, lab, pick, q in zip(first["frame_id"], first["labelled"], first["picked"], first["queued"], strict=True)}
    assert flags[s.human_frame][0] and all(flags[p][1] and flags[p][2] for p in s.picks)
    # cached: the blob answers until an embedding changes
    second = env.client.get(url, headers=env.viewer).json()
    assert second["cached"] is True and second["x"] == first["x"] and second["version"] == first["version"]
    with env.workspace.db.session() as session:
        new_frame = session.scalars(select(Frame.id).where(Frame.video_id == s.videos[1])).first()
        assert new_frame is not None
        session.execute(delete(Embedding).where(Embedding.frame_id == new_frame))
    third = env.client.get(url, headers=env.viewer).json()
    assert third["cached"] is False and third["count"] == 23 and third["version"] != first["version"]
    views = env.workspace.blobs.path(f"projects/{s.project_id}/views")
    assert len(list(views.glob("map-classic-*.npz"))) == 1  # the older projection is removed


def test_pca_of_degenerate_inputs() -> None:
    xy, explained = pca_2d(np.zeros((0, 4), np.float32))
    assert xy.shape == (0, 2)
    xy, _ = pca_2d(np.ones((3, 4), np.float32))
    assert np.allclose(xy, 0.5)
    xy, explained = pca_2d(np.array([[0, 0], [1, 0], [2, 0]], np.float32))
    assert np.allclose(xy[:, 0], [0, 0.5, 1]) and np.allclose(xy[:, 1], 0.5) and explained[0] == pytest.approx(1.0)


def test_embedding_map_without_embeddings_says_why(env: Env) -> None:
    body = env.client.get(f"/projects/{env.other_project}/embedding-map", headers=env.other).json()
    assert body["count"] == 0 and body["frame_id"] == [] and "no embedded frames" in body["reason"]
    unknown = env.client.get(f"/projects/{env.seeded.project_id}/embedding-map?backbone=dinov2_vits14", headers=env.viewer)
    assert unknown.status_code == 409 and unknown.json()["code"] == "not_embedded"


def test_round_history_explains_missing_metrics(env: Env) -> None:
    body = env.client.get(f"/projects/{env.seeded.project_id}/rounds/history", headers=env.viewer).json()
    first, second = body["rounds"]
    assert first["metrics"]["proxy_JF"] is None and first["human_frames"] == 3
    assert "too few human frames" in first["note"] and "at least 10" in first["note"]
    assert second["note"] is None and second["metrics"]["proxy_JF"] == 0.65 and second["human_frames"] == 20
    assert sorted(p["frame_id"] for p in second["picks"]) == sorted(env.seeded.picks) and first["picks"] == []
    assert body["series"] == {
        "number": [1, 2], "proxy_JF": [None, 0.65], "proxy_J": [None, 0.6], "proxy_F": [None, 0.7], "human_frames": [3, 20],
    }


def test_queue_frames_by_id(env: Env) -> None:
    s = env.seeded
    url = f"/projects/{s.project_id}/queue/frames"
    fresh = [f for f in s.frames[s.videos[1]] if f not in s.picks][-3:]
    picked = s.picks[0]
    answer = env.client.post(url, json={"frame_ids": [*fresh, picked, fresh[0]], "reason": "lasso"}, headers=env.admin)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["created"], body["existing"]) == (3, 1)
    assert body["preannotate_job"] is None  # the setting is off in this test
    by_frame = {t["frame_id"]: t for t in body["tasks"]}
    assert set(by_frame) == {*fresh, picked}
    assert by_frame[picked]["created"] is False and by_frame[picked]["state"] == "open"
    with env.workspace.db.session() as session:
        rows = session.execute(select(Task.frame_id, Task.reason, Task.state).where(Task.project_id == s.project_id)).all()
    stored = {f: (r, st) for f, r, st in rows}
    assert all(stored[f] == ("lasso", "open") for f in fresh)
    assert stored[picked][0] == "uniform"  # a frame with a task keeps it
    # again: nothing new
    again = env.client.post(url, json={"frame_ids": fresh}, headers=env.admin).json()
    assert again["created"] == 0 and again["existing"] == len(fresh)


def test_queue_frames_errors_and_roles(env: Env) -> None:
    s = env.seeded
    url = f"/projects/{s.project_id}/queue/frames"
    frame = s.frames[s.videos[1]][0]
    with env.workspace.db.session() as session:
        before = session.scalar(select(func.count(Task.id)))
    foreign = env.client.post(url, json={"frame_ids": [frame, 10**9]}, headers=env.admin)
    assert foreign.status_code == 422 and foreign.json()["code"] == "unknown_frames"
    for bad in ({"frame_ids": []}, {"frame_ids": [0]}, {"frame_ids": [frame], "reason": ""}, {"frame_ids": [frame], "x": 1}):
        assert env.client.post(url, json=bad, headers=env.admin).status_code == 422, bad
    assert env.client.post(url, json={"frame_ids": [frame]}, headers=env.viewer).status_code == 403
    assert env.client.post(url, json={"frame_ids": [frame]}, headers=env.annotator).status_code == 403
    assert env.client.post(url, json={"frame_ids": [frame]}).status_code == 401
    assert env.client.post(url, json={"frame_ids": [frame]}, headers=env.other).status_code == 404
    with env.workspace.db.session() as session:
        assert session.scalar(select(func.count(Task.id))) == before  # nothing was queued


def test_queue_frames_queues_their_preannotation(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    seeded = seed_view_project(workspace, rounds=False)
    admin = auth(new_key(workspace, "admin"))
    with TestClient(create_app(settings, workspace=workspace)) as client:
        frames = seeded.frames[seeded.videos[1]][:2]
        body = client.post(f"/projects/{seeded.project_id}/queue/frames", json={"frame_ids": frames}, headers=admin).json()
        assert body["created"] == 2 and body["preannotate_job"] is not None
        job = wait_job(client, body["preannotate_job"], admin)
        assert job["kind"] == "preannotate" and job["params"]["task_ids"] == sorted(t["task_id"] for t in body["tasks"])
    workspace.close()


@pytest.mark.parametrize(
    "path",
    ["/projects/{p}/overview", "/projects/{p}/videos/{v}/timeline", "/projects/{p}/embedding-map", "/projects/{p}/rounds/history"],
)
def test_reads_need_a_key_and_hide_other_projects(env: Env, path: str) -> None:
    s = env.seeded
    url = path.format(p=s.project_id, v=s.videos[0])
    assert env.client.get(url).status_code == 401
    assert env.client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert env.client.get(url, headers=env.other).status_code == 404  # a key of another project
    assert env.client.get(url, headers=env.viewer).status_code == 200
    unknown = env.client.get(path.format(p=10**6, v=s.videos[0]), headers=env.admin)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_timeline_of_an_unknown_or_foreign_video_is_404(env: Env) -> None:
    s = env.seeded
    with env.workspace.db.session() as session:
        foreign = session.scalar(select(Video.id).where(Video.project_id == env.other_project))
    for video in (foreign, 10**6):
        answer = env.client.get(f"/projects/{s.project_id}/videos/{video}/timeline", headers=env.viewer)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", video


def test_the_pages_cookie_session_needs_the_csrf_token_to_queue(env: Env) -> None:
    s = env.seeded
    key = new_key(env.workspace, "admin")
    session = env.client.post("/session", json={"key": key}).json()
    url = f"/projects/{s.project_id}/queue/frames"
    body = {"frame_ids": [s.frames[s.videos[1]][5]]}
    assert env.client.get(f"/projects/{s.project_id}/overview").status_code == 200  # the cookie reads
    refused = env.client.post(url, json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    assert env.client.post(url, json=body, headers={"X-CSRF-Token": session["csrf_token"]}).status_code == 200
    env.client.cookies.clear()


# --- per-upload sampling ----------------------------------------------------------------------------


def test_upload_with_fps_and_stride_overrides(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, preannotate=False)
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    clip = write_clip(tmp_path / "clip.mp4")  # 4 s at 10 fps
    other = write_clip(tmp_path / "other.mp4", shade=3)  # the same length, another file
    with TestClient(create_app(settings, workspace=workspace)) as client:
        pid = client.post("/projects", json={"name": "up"}, headers=admin).json()["id"]
        url = f"/projects/{pid}/videos"
        for query in ("fps=-1", "fps=1001", "fps=nan", "fps=inf", "fps=two", "stride=0", "stride=1.5", "stride=100001"):
            bad = client.post(f"{url}?{query}", files={"file": ("clip.mp4", clip.read_bytes())}, headers=admin)
            assert bad.status_code == 422 and bad.json()["code"] == "validation_error", query
        with workspace.db.session() as session:
            assert session.scalar(select(func.count(Job.id))) == 0
        counts = {}
        for query, path in (("fps=2", clip), ("stride=4", other)):
            job = client.post(f"{url}?{query}", files={"file": (path.name, path.read_bytes())}, headers=admin)
            assert job.status_code == 202, job.text
            done = wait_job(client, job.json()["id"], admin)
            assert done["state"] == "succeeded", done
            counts[query] = done["result"]["frames"]
            with workspace.db.session() as session:
                video = session.get(Video, done["result"]["video_id"])
                assert video is not None
                stored = session.scalar(select(func.count(Frame.id)).where(Frame.video_id == video.id))
                counts[query + " stored"] = stored
                counts[query + " video"] = (video.sample_fps, video.sample_stride)
        # the ingest job left the embedding map's projection cached
        answer = client.get(f"/projects/{pid}/embedding-map", headers=admin).json()
        assert answer["cached"] is True and answer["count"] == 18
    workspace.close()
    # 4 s at 2 fps: t = 0, 0.5, ..., 3.5; every 4th of 40 frames: 10
    assert counts == {
        "fps=2": 8, "fps=2 stored": 8, "fps=2 video": (2.0, 1),
        "stride=4": 10, "stride=4 stored": 10, "stride=4 video": (0.0, 4),
    }


def test_an_upload_with_part_frames_is_decoded_in_parts(tmp_path: Path) -> None:
    from tests.test_ingest_chunks import write_scenes

    settings = make_settings(tmp_path, preannotate=False)
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    clip = tmp_path / "scenes.mp4"
    write_scenes(clip)  # 300 frames, a keyframe every 20 at most, 4 scenes
    with TestClient(create_app(settings, workspace=workspace)) as client:
        pid = client.post("/projects", json={"name": "parts"}, headers=admin).json()["id"]
        url = f"/projects/{pid}/videos"
        for query in ("part_frames=0", "part_frames=-3", "part_frames=x"):
            bad = client.post(f"{url}?{query}", files={"file": ("scenes.mp4", clip.read_bytes())}, headers=admin)
            assert bad.status_code == 422 and bad.json()["code"] == "validation_error", query
        job = client.post(f"{url}?part_frames=50", files={"file": ("scenes.mp4", clip.read_bytes())}, headers=admin)
        assert job.status_code == 202, job.text
        done = wait_job(client, job.json()["id"], admin)
        assert done["state"] == "succeeded", done
        result = done["result"]
        assert result["parts"] >= 4 and result["frames"] == 300 and result["shots"] == 4
        videos = client.get(f"/projects/{pid}/videos", headers=admin).json()
        assert [v["id"] for v in videos] == [result["video_id"]]
        with workspace.db.session() as session:
            stored = session.scalar(select(func.count(Frame.id)).where(Frame.video_id == result["video_id"]))
        assert stored == 300
    uploads = workspace.blobs.path(f"projects/{pid}/uploads")
    assert not list(uploads.iterdir()) and not list((workspace.blobs.root / ".staging").iterdir())
    workspace.close()


def test_project_ingest_refuses_bad_sampling(tmp_path: Path) -> None:
    import curator

    with curator.open(tmp_path / "home", backbone="classic") as home:
        project = home.project("p")
        for fps, stride in ((-1.0, None), (float("nan"), None), (None, 0), (None, True)):
            with pytest.raises(ValueError):
                project.ingest(tmp_path / "missing.mp4", fps=fps, stride=stride)  # type: ignore[arg-type]
