"""Browser sessions over HTTP (no browser): sign in with a key for an HttpOnly cookie, CSRF on cookie
writes, sign-out, expiry and revocation, the body limit for cookie callers, and the page and
Swagger UI served from the package."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api import create_app
from api.auth import SESSION_COOKIE
from api.limits import ANONYMOUS_MAX_BYTES, BodyLimitMiddleware
from curator.store.keys import hash_key, revoke_key
from curator.store.models import ApiKey, BrowserSession
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_tasks

Env = tuple[TestClient, Workspace, int]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    project_id = seed_tasks(workspace, "street", 4)
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace, project_id


def sign_in(client: TestClient, key: str) -> dict[str, object]:
    r = client.post("/session", json={"key": key})
    assert r.status_code == 201, r.text
    body: dict[str, object] = r.json()
    return body


def test_sign_in_sets_an_httponly_strict_cookie_and_stores_only_a_hash(env: Env) -> None:
    client, workspace, _ = env
    key = new_key(workspace, "annotator")
    r = client.post("/session", json={"key": key})
    assert r.status_code == 201
    body = r.json()
    assert body["role"] == "annotator" and body["project_id"] is None and key.startswith(body["key_prefix"])
    assert len(body["csrf_token"]) >= 32 and r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    token = re.match(rf"{SESSION_COOKIE}=([^;]+);", cookie).group(1)  # type: ignore[union-attr]
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path", "max-age"} <= attributes and "secure" not in attributes
    assert "samesite=strict" in cookie.lower() and "max-age=43200" in cookie.lower()
    assert key not in cookie and token.startswith("cus_")
    with workspace.db.session() as session:
        rows = session.scalars(select(BrowserSession)).all()
        assert [row.token_hash for row in rows] == [hash_key(token)]
    # the cookie alone reads, and GET /session gives the same CSRF token back
    assert client.get("/projects").status_code == 200
    assert client.get("/session").json()["csrf_token"] == body["csrf_token"]


def test_secure_cookie_over_https_only(env: Env) -> None:
    client, workspace, _ = env
    key = new_key(workspace, "annotator")
    https = TestClient(client.app, base_url="https://testserver")
    r = https.post("/session", json={"key": key})
    assert r.status_code == 201 and "secure" in r.headers["set-cookie"].lower()


def test_unknown_key_gets_401_and_no_cookie(env: Env) -> None:
    client, _, _ = env
    r = client.post("/session", json={"key": "cur_not-a-key"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized" and "set-cookie" not in r.headers
    assert client.get("/session").status_code == 401
    assert client.post("/session", json={}).status_code == 422


def test_cookie_writes_need_the_csrf_token_bearer_writes_do_not(env: Env) -> None:
    client, workspace, project_id = env
    key = new_key(workspace, "annotator")
    csrf = str(sign_in(client, key)["csrf_token"])
    claim = f"/projects/{project_id}/queue/claim"
    r = client.post(claim, json={"limit": 1})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    assert client.post(claim, json={"limit": 1}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    r = client.post(claim, json={"limit": 1}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    frame_id = r.json()["tasks"][0]["frame_id"]
    # a script with a bearer key needs no CSRF token, with or without a cookie around
    assert client.post(claim, json={"limit": 1}, headers=auth(key)).status_code == 200
    other = TestClient(client.app)
    assert other.post(claim, json={"limit": 1}, headers=auth(key)).status_code == 200
    # images load with the cookie
    assert client.get(f"/frames/{frame_id}/image").status_code == 200
    assert other.get(f"/frames/{frame_id}/image").status_code == 401


def test_sign_out_needs_csrf_and_ends_the_session(env: Env) -> None:
    client, workspace, _ = env
    csrf = str(sign_in(client, new_key(workspace, "viewer"))["csrf_token"])
    r = client.delete("/session")
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    r = client.delete("/session", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204 and f'{SESSION_COOKIE}=""' in r.headers["set-cookie"]
    assert client.get("/projects").status_code == 401 and client.get("/session").status_code == 401
    with workspace.db.session() as session:
        assert session.scalars(select(BrowserSession)).all() == []
    assert client.delete("/session").status_code == 204  # nothing to end: still fine


def test_revoked_keys_and_expired_sessions_stop_working(env: Env) -> None:
    client, workspace, _ = env
    key = new_key(workspace, "annotator")
    sign_in(client, key)
    assert client.get("/projects").status_code == 200
    with workspace.db.session() as session:
        session.execute(update(BrowserSession).values(expires_at=0.0))
    r = client.get("/projects")
    assert r.status_code == 401 and "sign in again" in r.json()["detail"]
    sign_in(client, key)
    assert client.get("/projects").status_code == 200
    with workspace.db.session() as session:
        key_id = session.scalars(select(ApiKey.id).where(ApiKey.key_hash == hash_key(key))).one()
        assert revoke_key(session, key_id)
    assert client.get("/projects").status_code == 401
    assert client.get("/session").status_code == 401
    assert client.post("/session", json={"key": key}).status_code == 401


def test_session_cookie_gets_the_authenticated_body_limit() -> None:
    limits = BodyLimitMiddleware(app=None, json_max_bytes=1000)  # type: ignore[arg-type]
    token = "cus_" + "a" * 43

    def scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
        return {"type": "http", "method": "POST", "path": "/tasks/1/submit", "headers": list(headers)}

    assert limits.limit_for(scope()) == ANONYMOUS_MAX_BYTES  # type: ignore[arg-type]
    assert limits.limit_for(scope((b"cookie", f"x=1; {SESSION_COOKIE}={token}".encode()))) == 1000  # type: ignore[arg-type]
    assert limits.limit_for(scope((b"cookie", f"{SESSION_COOKIE}=nope".encode()))) == ANONYMOUS_MAX_BYTES  # type: ignore[arg-type]
    assert limits.limit_for(scope((b"cookie", f"other_{SESSION_COOKIE}={token}".encode()))) == ANONYMOUS_MAX_BYTES  # type: ignore[arg-type]


def test_a_large_submit_with_a_session_cookie_is_not_refused_for_its_size(env: Env) -> None:
    client, workspace, project_id = env
    csrf = str(sign_in(client, new_key(workspace, "annotator"))["csrf_token"])
    headers = {"X-CSRF-Token": csrf}
    task = client.post(f"/projects/{project_id}/queue/claim", json={"limit": 1}, headers=headers).json()["tasks"][0]
    counts = [0] * (24 * 32 // 2) + [0]  # padding: an invalid mask, but over the anonymous limit once sent as JSON
    body = {"masks": [{"object_id": 1, "rle": {"size": [24, 32], "counts": counts * 200}}]}
    r = client.post(f"/tasks/{task['id']}/submit", json=body, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "invalid_mask"
    anonymous = TestClient(client.app)
    assert anonymous.post(f"/tasks/{task['id']}/submit", json=body).status_code == 413


def test_the_page_and_its_assets_are_served_from_the_package(env: Env) -> None:
    client, _, _ = env
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for url in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert url.startswith("/"), url
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200, url
    for module in ("main", "api", "editor", "filmstrip", "rle"):
        r = client.get(f"/static/js/{module}.js")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"], module
        assert r.headers["cache-control"] == "no-cache"  # revalidated: never an old module with a new page
        for imported in re.findall(r'from "([^"]+)"', r.text):
            assert imported.startswith("./"), (module, imported)  # nothing from another origin


def test_docs_load_swagger_ui_from_the_package(env: Env) -> None:
    client, workspace, _ = env
    html = client.get("/docs", headers=auth(new_key(workspace, "viewer"))).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in assets
    assert "/static/vendor/swagger-ui/swagger-ui.css" in assets
    assert all(a.startswith("/static/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "cdn" not in html.lower()
    vendor = Path(__file__).resolve().parents[1] / "api" / "web" / "vendor" / "swagger-ui"
    assert (vendor / "LICENSE").is_file()
