"""The pages: the labelling workbench at ``GET /``, the project view at ``GET /project``, and their
assets under ``/static`` (plain JS modules and CSS from ``api/web/``, shipped in the package;
nothing is fetched from elsewhere, so it works offline).

The pages themselves are public (they hold no data); they sign in through ``/session`` and every
call they make goes through the same routes, roles and checks as a script's.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

#: The page's files: ``index.html``, ``app.css``, ``js/*.js``, ``vendor/swagger-ui/``.
WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
#: Where :data:`WEB_ROOT` is served.
STATIC_PREFIX = "/static"

#: The page loads only its own files: no inline script, no other origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def labelling_page() -> FileResponse:
    """The labelling workbench (sign-in form until a session exists)."""
    return FileResponse(WEB_ROOT / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/project")
def project_page() -> FileResponse:
    """The project view: overview, video with masks, embedding map, rounds, upload and start work
    (``project.html``; sign-in form until a session exists)."""
    return FileResponse(WEB_ROOT / "project.html", media_type="text/html", headers=PAGE_HEADERS)


class PageFiles(StaticFiles):
    """The files under :data:`WEB_ROOT`, revalidated on every load (``Cache-Control: no-cache`` with
    their ``ETag``), so that a browser never mixes modules of an older server with a newer page."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        """The file's answer, with ``Cache-Control: no-cache`` and ``X-Content-Type-Options: nosniff``."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
