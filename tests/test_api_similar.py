"""``GET /frames/{id}/similar``: nearest frames from the project's FAISS index, project-scoped keys,
404 for unknown frames, 409 ``not_embedded`` for a frame without an embedding, ``k`` in 1..100."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api import create_app
from curator.index import sync_project_index
from curator.store import repo
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_frames

N = 24


def _vectors(n: int) -> np.ndarray:
    """Two tight groups (frames 0..11 and 12..23) on a ring: neighbours are known in order."""
    angles = np.concatenate([np.linspace(0.0, 0.3, n // 2), np.linspace(2.0, 2.3, n - n // 2)])
    rng = np.random.default_rng(0)
    x = np.zeros((n, 8), np.float32)
    x[:, 0], x[:, 1] = np.cos(angles), np.sin(angles)
    x[:, 2:] = 0.001 * rng.normal(size=(n, 6))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def similar(tmp_path: Path) -> Iterator[tuple[TestClient, Workspace, int, list[int], np.ndarray]]:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    project_id, frame_ids = seed_frames(workspace, "similar", N + 1, videos=2)
    x = _vectors(N)
    with workspace.db.session() as session:  # the last frame stays without an embedding
        repo.put_embeddings(session, np.asarray(frame_ids[:N], np.int64), x, "classic")
    sync_project_index(workspace, project_id, "classic")
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace, project_id, frame_ids, x
    workspace.close()


def test_similar_frames_best_first_from_the_index(similar) -> None:  # type: ignore[no-untyped-def]
    client, workspace, project_id, frame_ids, x = similar
    viewer = auth(new_key(workspace, "viewer", project_id))
    r = client.get(f"/frames/{frame_ids[3]}/similar?k=5", headers=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body) == 5
    got = [item["frame"]["id"] for item in body]
    sims = [item["similarity"] for item in body]
    expected = np.argsort(-(x @ x[3]), kind="stable")[1:6]
    assert got == [frame_ids[i] for i in expected]
    assert frame_ids[3] not in got and sims == sorted(sims, reverse=True)
    np.testing.assert_allclose(sims, (x @ x[3])[expected], atol=1e-5)
    assert all(frame_ids.index(f) < N // 2 for f in got)  # all from the frame's own group
    ref = body[0]["frame"]
    assert ref["image_url"] == f"/frames/{ref['id']}/image" and {"video_id", "timestamp"} <= ref.keys()

    # default k is 10; k larger than the project gives every other embedded frame
    assert len(client.get(f"/frames/{frame_ids[3]}/similar", headers=viewer).json()) == 10
    assert len(client.get(f"/frames/{frame_ids[3]}/similar?k=100", headers=viewer).json()) == N - 1


def test_similar_rebuilds_a_missing_index_file(similar) -> None:  # type: ignore[no-untyped-def]
    client, workspace, project_id, frame_ids, _ = similar
    admin = auth(new_key(workspace, "admin"))
    first = client.get(f"/frames/{frame_ids[20]}/similar?k=4", headers=admin).json()
    path = workspace.index_path(project_id, "classic")
    path.unlink()  # the file is a cache of the database
    r = client.get(f"/frames/{frame_ids[20]}/similar?k=4", headers=admin)
    assert r.status_code == 200 and r.json() == first
    assert path.is_file()


def test_similar_errors(similar) -> None:  # type: ignore[no-untyped-def]
    client, workspace, _, frame_ids, _ = similar
    admin = auth(new_key(workspace, "admin"))
    r = client.get("/frames/987654/similar", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.get(f"/frames/{frame_ids[N]}/similar", headers=admin)  # no embedding yet
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "not_embedded" and str(frame_ids[N]) in r.json()["detail"]
    for bad in ("0", "101", "x"):
        r = client.get(f"/frames/{frame_ids[0]}/similar?k={bad}", headers=admin)
        assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert client.get(f"/frames/{frame_ids[0]}/similar").status_code == 401

    # a key of another project sees neither the frame nor whether it exists
    other_project, other_frames = seed_frames(workspace, "other", 3)
    outsider = auth(new_key(workspace, "viewer", other_project))
    r = client.get(f"/frames/{frame_ids[0]}/similar", headers=outsider)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    # a project without any embeddings: 409, not a crash
    r = client.get(f"/frames/{other_frames[0]}/similar", headers=outsider)
    assert r.status_code == 409 and r.json()["code"] == "not_embedded"


def test_similar_is_in_the_openapi_schema(similar) -> None:  # type: ignore[no-untyped-def]
    client, workspace = similar[0], similar[1]
    spec = client.get("/openapi.json", headers=auth(new_key(workspace, "viewer"))).json()
    op = spec["paths"]["/frames/{frame_id}/similar"]["get"]
    k = next(p for p in op["parameters"] if p["name"] == "k")
    assert k["schema"]["minimum"] == 1 and k["schema"]["maximum"] == 100
    assert {"200", "404", "409", "422"} <= set(op["responses"])
    assert "SimilarPublic" in spec["components"]["schemas"]
