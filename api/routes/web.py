"""The labelling page: ``GET /`` and its assets under ``/static`` (plain JS modules and CSS from
``api/web/``, shipped in the package; nothing is fetched from elsewhere, so it works offline).

The page itself is public (it holds no data); it signs in through ``/session`` and every call it
makes goes through the same routes, roles and checks as a script's.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

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
