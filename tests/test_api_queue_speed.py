"""What the queue's speed rests on: the key cache (and how revocation still works), the router order,
the hand-made JSON answers, and the bench's reference apps doing curator's writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api import create_app
from api.auth import KeyCache, Principal
from api.routes import queue
from api.schemas import ClaimPublic, SubmitPublic
from benchmarks.api import _seed, _submit_body
from benchmarks.api_reference import VARIANTS
from benchmarks.api_reference import create_app as create_reference
from curator.store.keys import hash_key, revocations, revoke_key
from curator.store.models import Annotation, ApiKey, Task
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_tasks


@pytest.fixture
def cached(tmp_path: Path) -> Iterator[tuple[TestClient, Workspace]]:
    settings = make_settings(tmp_path, key_cache_seconds=60.0)
    workspace = Workspace(settings)
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace


def _revoke_elsewhere(workspace: Workspace, key: str) -> None:
    """Revoke ``key`` as another process (``curator keys revoke``) would: in the database only."""
    with workspace.db.session() as session:
        session.execute(update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(revoked_at=ApiKey.created_at))


def test_key_cache_holds_live_keys_for_its_seconds() -> None:
    now = [100.0]
    cache = KeyCache(5.0, clock=lambda: now[0])
    principal = Principal(key_id=1, role="annotator", project_id=None)
    assert cache.get("cur_a") is None
    cache.put("cur_a", principal, revocations())
    assert cache.get("cur_a") == principal
    now[0] += 5.0
    assert cache.get("cur_a") is None
    assert KeyCache(0.0).get("cur_a") is None  # off


def test_a_key_revoked_elsewhere_works_until_the_cache_lets_go(cached: tuple[TestClient, Workspace]) -> None:
    client, workspace = cached
    key = new_key(workspace, "admin")
    assert client.get("/projects", headers=auth(key)).status_code == 200
    _revoke_elsewhere(workspace, key)
    assert client.get("/projects", headers=auth(key)).status_code == 200  # trusted for key_cache_seconds
    client.app.state.key_cache.clock = lambda: float("inf")  # type: ignore[attr-defined]
    assert client.get("/projects", headers=auth(key)).status_code == 401


def test_a_key_revoked_in_the_server_process_stops_at_once(cached: tuple[TestClient, Workspace]) -> None:
    client, workspace = cached
    key = new_key(workspace, "admin")
    assert client.get("/projects", headers=auth(key)).status_code == 200
    with workspace.db.session() as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))).one()
        assert revoke_key(session, key_id)
    assert client.get("/projects", headers=auth(key)).status_code == 401


def test_without_the_cache_a_key_revoked_elsewhere_stops_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, key_cache_seconds=0)
    workspace = Workspace(settings)
    with TestClient(create_app(settings, workspace=workspace)) as client:
        key = new_key(workspace, "admin")
        assert client.get("/projects", headers=auth(key)).status_code == 200
        _revoke_elsewhere(workspace, key)
        assert client.get("/projects", headers=auth(key)).status_code == 401


def _overlap(a: str, b: str) -> bool:
    left, right = a.strip("/").split("/"), b.strip("/").split("/")
    return len(left) == len(right) and all(x == y or "{" in x or "{" in y for x, y in zip(left, right, strict=True))


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The API routes of an app, those of included routers too."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # an included router
            found.extend(_api_routes(route.original_router.routes))
    return found


def test_no_other_route_matches_a_queue_route(cached: tuple[TestClient, Workspace]) -> None:
    """The queue's router is matched first; that decides nothing while no other route matches its paths."""
    client, _ = cached
    routes = _api_routes(client.app.routes)  # type: ignore[attr-defined]
    ours = _api_routes(list(queue.router.routes))
    assert len(routes) > 40 and len(ours) >= 5
    for mine in ours:
        for other in routes:
            if other.endpoint is mine.endpoint or not (mine.methods or set()) & (other.methods or set()):
                continue
            assert not _overlap(mine.path, other.path), (mine.path, other.path)


def test_claim_and_submit_answer_as_their_response_models(cached: tuple[TestClient, Workspace]) -> None:
    client, workspace = cached
    project_id = seed_tasks(workspace, "speed", 2, size=(64, 64))
    headers = auth(new_key(workspace, "annotator", project_id))
    claimed = client.post(f"/projects/{project_id}/queue/claim", json={"limit": 1}, headers=headers)
    assert claimed.status_code == 200 and claimed.headers["content-type"] == "application/json"
    body = claimed.json()
    assert set(body) == {"tasks", "lease_seconds"} and body["tasks"][0]["state"] == "leased"
    assert ClaimPublic.model_validate(body).model_dump(mode="json") == body
    done = client.post(f"/tasks/{body['tasks'][0]['id']}/submit", json=_submit_body(), headers=headers)
    assert done.status_code == 200
    assert SubmitPublic.model_validate(done.json()).model_dump(mode="json") == done.json()


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_apps_do_the_queues_writes(tmp_path: Path, variant: str) -> None:
    workspace = Workspace(make_settings(tmp_path))
    project_id, _ = _seed(workspace, 3, 1)
    app = create_reference(workspace.settings.resolved_database_url, variant)
    with TestClient(app) as client:
        leased = client.post(f"/projects/{project_id}/queue/claim", json={"limit": 2}).json()["tasks"]
        assert len(leased) == 2
        for task in leased:
            assert client.post(f"/tasks/{task['id']}/submit", json=_submit_body()).status_code == 200
        assert client.post(f"/tasks/{leased[0]['id']}/submit", json=_submit_body()).status_code == 409
    with workspace.db.session() as session:
        states = sorted(session.scalars(select(Task.state)))
        humans = session.scalars(select(Annotation).where(Annotation.source == "human")).all()
    assert states == ["done", "done", "open"] and len(humans) == 2
    assert humans[0].rle == _submit_body()["masks"][0]["rle"]
    workspace.close()
