"""Schemathesis over the app's own OpenAPI document (``app.openapi()``, so no HTTP route or key is
needed to read it), with an admin key, at least 30 generated requests per operation: no answer is a
5xx, every answer has a status code the document lists for that operation, and every body matches
the documented schema.

Long (a minute or more on two cores): marked ``slow``; ``tests/test_api_schema.py`` is the quick
no-5xx run of the default suite.
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
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from api import create_app
from curator.workspace import Workspace
from tests.api_fixtures import auth, box_rle, make_settings, new_key, seed_tasks

pytestmark = pytest.mark.slow

_HOME = Path(tempfile.mkdtemp(prefix="curator-fuzz-"))
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

schema = schemathesis.openapi.from_dict(_APP.openapi())
schema.app = _APP

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _WORKSPACE.close()
    shutil.rmtree(_HOME, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_answers_follow_the_openapi_document(case: schemathesis.Case) -> None:
    if case.method.upper() == "DELETE":  # deleting the seeded project would starve the other cases
        case.query = {**(case.query or {}), "confirm": "not-the-name"}
    response = case.call(headers={"Authorization": f"Bearer {_KEY}"})
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        assert set(response.json()) >= {"code", "detail"}, response.text
