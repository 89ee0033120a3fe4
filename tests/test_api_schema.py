"""Schemathesis over the OpenAPI document: generated requests (valid and invalid) never get a 5xx,
and every error answer is JSON ``{"code", "detail"}``.

The app is built when the module is collected (schemathesis parametrizes from a loaded schema; its
lazy ``from_fixture`` loader does not work with the pytest in use), in a temp folder removed at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api import create_app
from curator.workspace import Workspace
from tests.api_fixtures import auth, box_rle, make_settings, new_key, seed_tasks

_HOME = Path(tempfile.mkdtemp(prefix="curator-schemathesis-"))
_SETTINGS = make_settings(_HOME, lease_seconds=60.0, path_roots=[_HOME])
_WORKSPACE = Workspace(_SETTINGS)
_PID = seed_tasks(_WORKSPACE, "fuzz", 20, (24, 32))
_KEY = new_key(_WORKSPACE, "admin")
_APP = create_app(_SETTINGS, workspace=_WORKSPACE)
with TestClient(_APP) as _client:  # some state to run into: leased tasks, labelled frames
    _tasks = _client.post(f"/projects/{_PID}/queue/claim", json={"limit": 5}, headers=auth(_KEY)).json()["tasks"]
    for _task in _tasks[:3]:
        _client.post(f"/tasks/{_task['id']}/submit", json={"masks": [{"object_id": 1, "rle": box_rle(24, 32)}]},
                     headers=auth(_KEY))

schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, headers=auth(_KEY))  # the document needs a key


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _WORKSPACE.close()
    shutil.rmtree(_HOME, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    if case.method.upper() == "DELETE":  # deleting the seeded project would starve the other cases
        case.query = {**(case.query or {}), "confirm": "not-the-name"}
    response = case.call(headers={"Authorization": f"Bearer {_KEY}"})
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"code", "detail"}, body
