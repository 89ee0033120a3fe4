"""The labelling workbench: the label schema (categories, each object's category) over REST, the CLI
and the exports; reopening and rejecting done tasks; pre-annotation of every queued task."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pycocotools.coco import COCO
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from api import create_app
from curator.cli import app as cli_app
from curator.index.project import sync_project_index
from curator.project import Project
from curator.store import repo
from curator.workspace import Workspace
from tests.api_fixtures import auth, box_rle, make_settings, new_key, seed_frames, seed_tasks, wait_job

H, W = 24, 32


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[TestClient, Workspace]]:
    settings = make_settings(tmp_path, propagator="flow", lease_seconds=60.0)
    workspace = Workspace(settings)
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace
    workspace.close()


def _label(workspace: Workspace, project_id: int, frame_id: int, masks: dict[int, dict[str, Any]]) -> None:
    with workspace.db.session() as session:
        repo.store_human_masks(session, frame_id, sorted(masks.items()))
        repo.complete_frame_tasks(session, project_id, [frame_id], 0)


# ---------------------------------------------------------------- the label schema


def test_categories_round_trip_over_rest(service: tuple[TestClient, Workspace]) -> None:
    client, workspace = service
    pid, _ = seed_frames(workspace, "schema", 2, (H, W))
    admin = auth(new_key(workspace, "admin"))
    viewer = auth(new_key(workspace, "viewer", pid))
    annotator = auth(new_key(workspace, "annotator", pid))
    assert client.get(f"/projects/{pid}/categories", headers=viewer).json() == []

    r = client.post(f"/projects/{pid}/categories", json={"name": "person", "color": "#FF0000"}, headers=admin)
    assert r.status_code == 201, r.text
    person = r.json()
    assert person["name"] == "person" and person["color"] == "#ff0000" and person["objects"] == []
    car = client.post(f"/projects/{pid}/categories", json={"name": "car", "color": "#00ff00"}, headers=admin).json()
    # a duplicate name is 409, a bad colour 422, a write by a viewer or annotator 403
    r = client.post(f"/projects/{pid}/categories", json={"name": "person", "color": "#0000ff"}, headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "name_taken"
    for bad in ("red", "#ff00", "#gg0000", "ff0000", "#ff00001"):
        r = client.post(f"/projects/{pid}/categories", json={"name": "x", "color": bad}, headers=admin)
        assert r.status_code == 422, bad
    r = client.post(f"/projects/{pid}/categories", json={"name": "   ", "color": "#000000"}, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "invalid_category"
    for key in (viewer, annotator):
        r = client.post(f"/projects/{pid}/categories", json={"name": "dog", "color": "#000000"}, headers=key)
        assert r.status_code == 403

    # objects: PUT gives an object id a category; null removes it; a category of another project is 404
    r = client.put(f"/projects/{pid}/objects/1", json={"category_id": person["id"]}, headers=admin)
    assert r.status_code == 200 and r.json() == {
        "object_id": 1, "category_id": person["id"], "category": "person", "color": "#ff0000"
    }
    assert client.put(f"/projects/{pid}/objects/2", json={"category_id": car["id"]}, headers=admin).status_code == 200
    assert client.put(f"/projects/{pid}/objects/2", json={"category_id": person["id"]}, headers=admin).status_code == 200
    assert client.put(f"/projects/{pid}/objects/3", json={"category_id": car["id"]}, headers=admin).status_code == 200
    assert client.put(f"/projects/{pid}/objects/3", json={"category_id": None}, headers=admin).json()["category"] is None
    assert client.put(f"/projects/{pid}/objects/1", json={"category_id": person["id"]}, headers=viewer).status_code == 403
    assert client.put(f"/projects/{pid}/objects/256", json={"category_id": car["id"]}, headers=admin).status_code == 422
    other, _ = seed_frames(workspace, "other", 1, (H, W))
    foreign = client.post(f"/projects/{other}/categories", json={"name": "tree", "color": "#123456"}, headers=admin)
    r = client.put(f"/projects/{pid}/objects/4", json={"category_id": foreign.json()["id"]}, headers=admin)
    assert r.status_code == 404

    listed = client.get(f"/projects/{pid}/categories", headers=viewer).json()
    assert [(c["name"], c["color"], c["objects"]) for c in listed] == [
        ("person", "#ff0000", [1, 2]), ("car", "#00ff00", []),
    ]
    objects = client.get(f"/projects/{pid}/objects", headers=viewer).json()
    assert [(o["object_id"], o["category"]) for o in objects] == [(1, "person"), (2, "person")]


def test_categories_round_trip_over_the_cli(tmp_path: Path, service: tuple[TestClient, Workspace]) -> None:
    client, workspace = service
    pid, _ = seed_frames(workspace, "cli", 2, (H, W))
    home = str(workspace.settings.home)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, [*args, "--project", "cli", "--home", home], catch_exceptions=False)

    result = run("categories", "add", "person", "--color", "#FF0000")
    assert result.exit_code == 0, result.output
    assert run("categories", "add", "car", "--color", "#0000ff").exit_code == 0
    duplicate = run("categories", "add", "person", "--color", "#00ff00")
    assert duplicate.exit_code == 2 and "person" in duplicate.output
    bad = run("categories", "add", "dog", "--color", "red")
    assert bad.exit_code == 2 and "#rrggbb" in bad.output
    assert run("categories", "assign", "1", "person").exit_code == 0
    assert run("categories", "assign", "2", "nope").exit_code == 2
    listed = json.loads(run("categories", "--json").output)
    assert [(c["name"], c["color"], c["objects"]) for c in listed] == [("person", "#ff0000", [1]), ("car", "#0000ff", [])]
    assert "person" in run("categories").output

    # what the CLI wrote, REST reads; what REST writes, the CLI lists
    viewer = auth(new_key(workspace, "viewer", pid))
    admin = auth(new_key(workspace, "admin"))
    assert [c["name"] for c in client.get(f"/projects/{pid}/categories", headers=viewer).json()] == ["person", "car"]
    assert client.post(f"/projects/{pid}/categories", json={"name": "tree", "color": "#00aa00"}, headers=admin).status_code == 201
    assert [c["name"] for c in json.loads(run("categories", "--json").output)] == ["person", "car", "tree"]


def test_exports_carry_the_category_of_each_object(tmp_path: Path, service: tuple[TestClient, Workspace]) -> None:
    client, workspace = service
    pid, frames = seed_frames(workspace, "export", 4, (H, W))
    admin = auth(new_key(workspace, "admin"))
    # without categories: one category "object", as before
    _label(workspace, pid, frames[0], {1: box_rle(H, W), 2: box_rle(H, W, 12, 14, 6, 6)})
    plain = client.get(f"/projects/{pid}/export?format=coco&images=false", headers=admin).json()
    assert plain["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    assert {a["category_id"] for a in plain["annotations"]} == {1}

    person = client.post(f"/projects/{pid}/categories", json={"name": "person", "color": "#ff0000"}, headers=admin).json()
    car = client.post(f"/projects/{pid}/categories", json={"name": "car", "color": "#0000ff"}, headers=admin).json()
    client.put(f"/projects/{pid}/objects/1", json={"category_id": person["id"]}, headers=admin)
    client.put(f"/projects/{pid}/objects/2", json={"category_id": car["id"]}, headers=admin)
    _label(workspace, pid, frames[2], {1: box_rle(H, W, 4, 4, 5, 5), 2: box_rle(H, W), 3: box_rle(H, W, 15, 20, 4, 4)})
    expected = {1: "person", 2: "car", 3: "object"}  # object 3 has no category

    r = client.get(f"/projects/{pid}/export?format=coco&include=human&images=false", headers=admin)
    path = tmp_path / "coco.json"
    path.write_bytes(r.content)
    coco = COCO(str(path))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["car", "object", "person"]
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 5
    for ann in anns:
        assert coco.loadCats(ann["category_id"])[0]["name"] == expected[ann["object_id"]], ann
    assert coco.loadCats(person["id"])[0]["color"] == "#ff0000"
    assert len(coco.getAnnIds(catIds=[person["id"]])) == 2

    ytvis = client.get(f"/projects/{pid}/export?format=ytvis&images=false", headers=admin).json()
    names = {c["id"]: c["name"] for c in ytvis["categories"]}
    assert {t["object_id"]: names[t["category_id"]] for t in ytvis["annotations"]} == expected

    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/projects/{pid}/export?format=davis", headers=admin).content))
    legend = json.loads(archive.read("palette.json"))
    assert {int(k): (v["category"], v["color"]) for k, v in legend["objects"].items()} == {
        1: ("person", "#ff0000"), 2: ("car", "#0000ff"), 3: ("object", None)
    }
    assert legend["objects"]["1"]["palette_color"] == "#800000"  # DAVIS palette index 1

    # a category named "object" takes the objects without one
    client.post(f"/projects/{pid}/categories", json={"name": "object", "color": "#888888"}, headers=admin)
    again = client.get(f"/projects/{pid}/export?format=coco&images=false", headers=admin).json()
    assert 0 not in {c["id"] for c in again["categories"]}
    assert {a["category_id"] for a in again["annotations"] if a["object_id"] == 3} == {
        next(c["id"] for c in again["categories"] if c["name"] == "object")
    }


# ---------------------------------------------------------------- reopen and reject


def test_reopen_and_reject_put_done_tasks_back(service: tuple[TestClient, Workspace]) -> None:
    client, workspace = service
    pid = seed_tasks(workspace, "review", 3, (H, W))
    admin = auth(new_key(workspace, "admin"))
    a = auth(new_key(workspace, "annotator", pid))
    b = auth(new_key(workspace, "annotator", pid))
    tasks = client.post(f"/projects/{pid}/queue/claim", json={"limit": 2}, headers=a).json()["tasks"]
    first, second = tasks[0]["id"], tasks[1]["id"]
    mask = box_rle(H, W)
    for tid in (first, second):
        r = client.post(f"/tasks/{tid}/submit", json={"masks": [{"object_id": 1, "rle": mask}]}, headers=a)
        assert r.status_code == 200, r.text
    assert client.post(f"/tasks/{first}/submit", json={"masks": []}, headers=a).json()["code"] == "task_done"

    # reopen: the author or an admin; another annotator may not; an open task cannot be reopened
    assert client.post(f"/tasks/{first}/reopen", headers=b).status_code == 403
    r = client.post(f"/tasks/{first}/reopen", headers=a)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["state"] == "open" and detail["review_note"] is None
    assert [(m["object_id"], m["source"], m["rle"]) for m in detail["pre_annotation"]] == [(1, "human", mask)]
    r = client.post(f"/tasks/{first}/reopen", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "task_not_done"
    assert client.get(f"/projects/{pid}/queue", headers=admin).json()["done"] == 1
    # the masks are still the frame's label until resubmitted: claimed again and replaced
    again = client.post(f"/projects/{pid}/queue/claim", json={"limit": 1}, headers=b).json()["tasks"]
    assert [t["id"] for t in again] == [first]
    other = box_rle(H, W, 10, 10, 5, 5)
    assert client.post(f"/tasks/{first}/submit", json={"masks": [{"object_id": 2, "rle": other}]}, headers=b).status_code == 200
    masks = client.get(f"/frames/{tasks[0]['frame_id']}/annotations", headers=admin).json()["masks"]
    assert [(m["object_id"], m["source"]) for m in masks] == [(2, "human")]
    assert client.post(f"/tasks/{first}/reopen", headers=a).status_code == 403  # b submitted it now
    assert client.post(f"/tasks/{first}/reopen", headers=admin).status_code == 200

    # reject: admin only, with a note; the masks become "rejected" and are the pre-annotation
    r = client.post(f"/tasks/{second}/reject", json={"note": "the box misses the arm"}, headers=a)
    assert r.status_code == 403
    assert client.post(f"/tasks/{second}/reject", json={"note": ""}, headers=admin).status_code == 422
    r = client.post(f"/tasks/{second}/reject", json={"note": "the box misses the arm"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "open" and r.json()["review_note"] == "the box misses the arm"
    detail = client.get(f"/tasks/{second}", headers=a).json()
    assert detail["review_note"] == "the box misses the arm"
    assert [(m["object_id"], m["source"]) for m in detail["pre_annotation"]] == [(1, "rejected")]
    r = client.post(f"/tasks/{second}/reject", json={"note": "again"}, headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "task_not_done"
    # a rejected frame is no label: the human export leaves it out
    export = client.get(f"/projects/{pid}/export?format=coco&include=human&images=false", headers=admin).json()
    assert tasks[1]["frame_id"] not in {i["id"] for i in export["images"]}
    # resubmitting replaces the rejected masks
    claimed = client.post(f"/projects/{pid}/queue/claim", json={"limit": 3}, headers=a).json()["tasks"]
    assert second in {t["id"] for t in claimed}
    assert client.post(f"/tasks/{second}/submit", json={"masks": [{"object_id": 1, "rle": other}]}, headers=a).status_code == 200
    masks = client.get(f"/frames/{tasks[1]['frame_id']}/annotations", headers=admin).json()["masks"]
    assert [(m["source"], m["rle"]) for m in masks] == [("human", other)]
    assert client.post("/tasks/999/reopen", headers=admin).status_code == 404


def test_review_note_column_is_added_to_an_old_database(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    with workspace.db.engine.begin() as conn:  # a database from before reviews (and migrations)
        conn.execute(text("ALTER TABLE tasks DROP COLUMN review_note"))
        conn.execute(text("DROP TABLE alembic_version"))
    workspace.close()
    for _ in range(2):
        workspace = Workspace(settings)
        assert "review_note" in {c["name"] for c in inspect(workspace.db.engine).get_columns("tasks")}
        workspace.close()


# ---------------------------------------------------------------- pre-annotation


def _embed(workspace: Workspace, project_id: int, frame_ids: list[int]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(frame_ids), 8)).astype(np.float32)
    with workspace.db.session() as session:
        repo.put_embeddings(session, np.asarray(frame_ids, np.int64), x / np.linalg.norm(x, axis=1, keepdims=True), "classic")
    sync_project_index(workspace, project_id, "classic")


def _select(client: TestClient, pid: int, budget: int, admin: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    r = client.post(f"/projects/{pid}/selections", json={"strategy": "uniform", "budget": budget}, headers=admin)
    job = wait_job(client, r.json()["id"], admin)
    assert job["state"] == "succeeded", job
    pre = wait_job(client, job["result"]["preannotate_job"], admin)
    assert pre["state"] == "succeeded" and pre["kind"] == "preannotate", pre
    return job, pre


def test_queued_tasks_get_a_pre_annotation_from_their_videos_human_keyframes(service: tuple[TestClient, Workspace]) -> None:
    client, workspace = service
    pid, frames = seed_frames(workspace, "pre", 16, (H, W), videos=2)
    _embed(workspace, pid, frames)
    with workspace.db.session() as session:
        video_of = repo.frame_videos(session, frames)
    first_video = video_of[frames[0]]
    admin = auth(new_key(workspace, "admin"))

    # a first selection on a project without labels: honestly nothing to pre-annotate
    job, pre = _select(client, pid, 2, admin)
    first_picks = job["result"]["picks"]
    assert pre["result"]["tasks"] == 2 and pre["result"]["pre_annotated"] == 0
    assert pre["result"]["reason"] == "no human masks yet"

    # one human keyframe in the first video; a new selection's tasks in that video are pre-annotated
    picked = {p["frame_id"] for p in job["result"]["picks"]}
    keyframe = next(f for f in frames if video_of[f] == first_video and f not in picked)
    _label(workspace, pid, keyframe, {1: box_rle(H, W, 4, 6, 10, 12)})
    job, pre = _select(client, pid, 8, admin)
    result = pre["result"]
    queued = [p for p in job["result"]["picks"] if p["task_id"] is not None]
    in_video = [p for p in queued if p["video_id"] == first_video and p["frame_id"] != keyframe]
    assert in_video and result["videos"] == 1 and result["propagator"] == "flow"
    for pick in in_video:
        detail = client.get(f"/tasks/{pick['task_id']}", headers=admin).json()
        assert detail["pre_annotation"], pick
        assert {m["source"] for m in detail["pre_annotation"]} == {"propagated"}
        assert all(0.0 <= m["confidence"] <= 1.0 for m in detail["pre_annotation"])
    elsewhere = [p for p in queued if p["video_id"] != first_video]
    for pick in elsewhere:  # no human mask in the other video: nothing to propagate from
        assert client.get(f"/tasks/{pick['task_id']}", headers=admin).json()["pre_annotation"] == []
    assert result["pre_annotated"] == len([p for p in queued if p["video_id"] == first_video])
    assert result["tasks"] == len(queued)
    if elsewhere:
        assert result["reason"] == "some tasks' videos have no human masks yet"

    # the first selection's tasks in the video get one on request (every open task by default)
    r = client.post(f"/projects/{pid}/preannotate", json={}, headers=admin)
    assert r.status_code == 202 and r.json()["kind"] == "preannotate"
    done = wait_job(client, r.json()["id"], admin)
    assert done["state"] == "succeeded", done
    for pick in first_picks:
        detail = client.get(f"/tasks/{pick['task_id']}", headers=admin).json()
        assert bool(detail["pre_annotation"]) == (pick["video_id"] == first_video), pick
    assert client.post(f"/projects/{pid}/preannotate", json={"propagator": "nope"}, headers=admin).status_code == 422
    viewer = auth(new_key(workspace, "viewer", pid))
    assert client.post(f"/projects/{pid}/preannotate", json={}, headers=viewer).status_code == 403


def test_facade_verbs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, propagator="flow")
    workspace = Workspace(settings)
    pid, frames = seed_frames(workspace, "facade", 6, (H, W))
    project = Project.by_id(workspace, pid)
    _embed(workspace, pid, frames)
    first = project.select(2, "uniform")
    assert first.preannotation is not None and first.preannotation["reason"] == "no human masks yet"
    picked = {p.frame_id for p in first.picks}
    keyframe = next(f for f in frames if f not in picked)
    mask = np.zeros((H, W), bool)
    mask[5:15, 5:20] = True
    project.label(keyframe, {1: mask})
    done = project.preannotate()
    assert done["tasks"] == 2 and done["pre_annotated"] == 2 and done["filled"] == 2 and done["reason"] is None
    task = first.picks[0].task_id
    assert task is not None
    assert project.task(task)["pre_annotation"][0]["source"] == "propagated"

    person = project.add_category("person", "#00FF00")
    with pytest.raises(repo.DuplicateNameError):
        project.add_category("person", "#000000")
    with pytest.raises(ValueError, match="rrggbb"):
        project.add_category("car", "green")
    project.set_object_category(1, person["id"])
    with pytest.raises(repo.NotFoundError):
        project.set_object_category(2, 999)
    assert project.categories() == [{"id": person["id"], "name": "person", "color": "#00ff00", "objects": [1]}]
    assert project.objects() == {1: person["id"]}

    lease = project.claim(1)[0]
    project.submit(lease.id, {1: mask})
    assert project.reject(lease.id, "too loose") is True
    assert project.reject(lease.id, "again") is False
    assert [m["source"] for m in project.masks(lease.frame_id, ["human", "rejected"])] == ["rejected"]
    assert project.task(lease.id)["review_note"] == "too loose"
    lease = project.claim(1)[0]
    project.submit(lease.id, {1: mask})
    assert project.reopen(lease.id) is True and project.task(lease.id)["state"] == "open"
    assert [m["source"] for m in project.masks(lease.frame_id, ["human", "rejected"])] == ["human"]
    assert project.task(lease.id)["pre_annotation"][0]["source"] == "human"
    workspace.close()
