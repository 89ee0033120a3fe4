"""Schemathesis over the app's own OpenAPI document (``app.openapi()``, so no HTTP route or key is
needed to read it), with an admin key, at least 30 generated requests per operation: no answer is a
5xx, every answer has a status code the document lists for that operation, and every body matches
the documented schema.

Long (about 40 s on two cores): marked ``slow``; ``tests/test_api_schema.py`` is the quick
no-5xx run of the default suite.
"""

from __future__ import annotations

import atexit
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
atexit.register(shutil.rmtree, _HOME, True)  # also when every case is skipped (no fixture runs then)
_SETTINGS = make_settings(_HOME, lease_seconds=60.0, path_roots=[_HOME])
_WORKSPACE = Workspace(_SETTINGS)
_APP = create_app(_SETTINGS, workspace=_WORKSPACE)
schema = schemathesis.openapi.from_dict(_APP.openapi())
schema.app = _APP

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def admin_key() -> Iterator[str]:
    """An admin key, over a project with some state to run into: leased tasks, labelled frames."""
    pid = seed_tasks(_WORKSPACE, "fuzz", 20, (24, 32))
    key = new_key(_WORKSPACE, "admin")
    with TestClient(_APP) as client:
        tasks = client.post(f"/projects/{pid}/queue/claim", json={"limit": 5}, headers=auth(key)).json()["tasks"]
        for task in tasks[:3]:
            body = {"masks": [{"object_id": 1, "rle": box_rle(24, 32)}]}
            client.post(f"/tasks/{task['id']}/submit", json=body, headers=auth(key))
    yield key
    _WORKSPACE.close()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_answers_follow_the_openapi_document(case: schemathesis.Case, admin_key: str) -> None:
    if case.method.upper() == "DELETE":  # deleting the seeded project would starve the other cases
        case.query = {**(case.query or {}), "confirm": "not-the-name"}
    response = case.call(headers=auth(admin_key))
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        assert set(response.json()) >= {"code", "detail"}, response.text
