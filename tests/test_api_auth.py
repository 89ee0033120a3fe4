"""Auth over HTTP: 401 without a valid key, 403 for a weak role, project-scoped keys, the keys CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import create_app
from curator.cli import app as cli
from curator.store.keys import revoke_key
from curator.store.models import ApiKey
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_tasks


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Workspace]]:
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace


def test_missing_unknown_and_revoked_keys_get_401(env: tuple[TestClient, Workspace]) -> None:
    client, workspace = env
    r = client.get("/projects")
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized" and "Bearer" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/projects", headers=auth("cur_nope")).json()["code"] == "unauthorized"
    key = new_key(workspace, "admin")
    assert client.get("/projects", headers=auth(key)).status_code == 200
    with workspace.db.session() as session:
        key_id = session.query(ApiKey.id).order_by(ApiKey.id.desc()).first()[0]
        assert revoke_key(session, key_id)
    r = client.get("/projects", headers=auth(key))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert client.get("/health").json() == {"status": "ok"}


def test_roles_and_project_scopes(env: tuple[TestClient, Workspace]) -> None:
    client, workspace = env
    p1 = seed_tasks(workspace, "one", 3)
    p2 = seed_tasks(workspace, "two", 3)
    admin1 = auth(new_key(workspace, "admin", p1))
    annotator1 = auth(new_key(workspace, "annotator", p1))
    viewer1 = auth(new_key(workspace, "viewer", p1))

    # a project admin cannot create projects (that needs a global admin)
    r = client.post("/projects", json={"name": "x"}, headers=admin1)
    assert r.status_code == 403 and r.json()["code"] == "forbidden" and "admin" in r.json()["detail"]
    # listing shows only the key's project; other projects look absent
    assert [p["id"] for p in client.get("/projects", headers=viewer1).json()] == [p1]
    assert client.get(f"/projects/{p2}", headers=admin1).status_code == 404
    assert client.post(f"/projects/{p2}/queue/claim", json={"limit": 1}, headers=annotator1).status_code == 404
    # viewer reads but cannot claim; annotator claims but cannot select or export
    assert client.get(f"/projects/{p1}/queue", headers=viewer1).status_code == 200
    r = client.post(f"/projects/{p1}/queue/claim", json={"limit": 1}, headers=viewer1)
    assert r.status_code == 403 and "annotator" in r.json()["detail"]
    assert client.post(f"/projects/{p1}/queue/claim", json={"limit": 1}, headers=annotator1).status_code == 200
    r = client.post(f"/projects/{p1}/selections", json={"budget": 2}, headers=annotator1)
    assert r.status_code == 403
    assert client.get(f"/projects/{p1}/export", headers=annotator1).status_code == 403
    assert client.get(f"/projects/{p1}/export", headers=admin1).status_code == 200
    # a task of another project is invisible
    tasks = client.post(f"/projects/{p1}/queue/claim", json={"limit": 1}, headers=admin1).json()["tasks"]
    other = auth(new_key(workspace, "annotator", p2))
    assert client.get(f"/tasks/{tasks[0]['id']}", headers=other).status_code == 404


def test_keys_cli_prints_a_key_once_and_lists_and_revokes(tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    r = runner.invoke(cli, ["keys", "create", "--role", "admin", "--home", home])
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[0]
    assert secret.startswith("cur_")
    settings = make_settings(tmp_path)
    workspace = Workspace(settings)
    with TestClient(create_app(settings, workspace=workspace)) as client:
        assert client.post("/projects", json={"name": "cli"}, headers=auth(secret)).status_code == 201
        r = runner.invoke(cli, ["keys", "create", "--role", "annotator", "--project", "cli", "--home", home])
        assert r.exit_code == 0, r.output
        listed = runner.invoke(cli, ["keys", "list", "--home", home]).stdout
        assert secret not in listed and "annotator" in listed and "project 1" in listed
        assert runner.invoke(cli, ["keys", "revoke", "1", "--home", home]).exit_code == 0
        assert client.get("/projects", headers=auth(secret)).status_code == 401
    bad = runner.invoke(cli, ["keys", "create", "--role", "boss", "--home", home])
    assert bad.exit_code == 2
