"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from api.auth import KeyCache
from api.deps import NoLock, PrincipalDep
from api.errors import install_error_handlers
from api.jobs import build_handlers
from api.limits import BodyLimitMiddleware
from api.routes import (
    categories,
    exports,
    frames,
    jobs,
    overview,
    predictions,
    projects,
    propagation,
    queue,
    rounds,
    selections,
    sessions,
    videos,
    web,
)
from curator.config import Settings, load_settings
from curator.jobs import JobRunner, ThreadJobRunner
from curator.jobs.base import QueueOnlyRunner
from curator.workspace import Workspace

logger = logging.getLogger("curator.api")

DESCRIPTION = """
Curation service for video segmentation datasets.

* **Auth**: every call but `/health` needs `Authorization: Bearer <key>`; create keys with
  `curator keys create --role admin|annotator|viewer [--project ID]`. Roles: `viewer` reads,
  `annotator` also claims and submits tasks, `admin` also manages projects, uploads, selections,
  propagation and exports. A key without a project holds its role on every project.
* **Browser**: the labelling page at `/` and the project view at `/project` sign in with `POST /session {key}` and then sends an
  HttpOnly session cookie instead of the header; with the cookie, POST/PUT/PATCH/DELETE need the
  session's `X-CSRF-Token` header (else `403 csrf_failed`).
* **Jobs**: uploads, embedding, selection and propagation answer `202` with a job; poll `GET /jobs/{id}`.
  A job identical to one still queued returns that one; a project with `max_queued_jobs` queued jobs
  gets `429 too_many_jobs`. A full disk is `507 insufficient_storage` (nothing is stored).
* **Queue**: `POST /projects/{id}/queue/claim` leases tasks for `lease_seconds`; submit masks as COCO
  RLE (or an indexed PNG) with `POST /tasks/{id}/submit`.
* **Errors** are JSON `{"code": ..., "detail": ...}`; `code` is stable, `detail` is for people.
* **Sizes**: request bodies over `json_max_bytes` (64 KiB without a key) get `413 payload_too_large`
  before they are read; video uploads are limited by `upload_max_bytes` instead.
"""


#: The OpenAPI document's tags, in the order its pages list them.
OPENAPI_TAGS: list[dict[str, str]] = [
    {"name": "projects", "description": "Projects hold videos, a queue and labels."},
    {"name": "videos", "description": "Uploads and server-side paths; each starts an ingest job."},
    {"name": "jobs", "description": "Long work: ingest, embed, select, propagate."},
    {"name": "selections", "description": "Pick keyframes worth labelling; picks become tasks."},
    {"name": "queue", "description": "Pull-based labelling: claim, read, submit, release, reopen, reject."},
    {"name": "categories", "description": "The label schema: categories and each object's category."},
    {"name": "frames", "description": "Frame images and their masks."},
    {"name": "propagation", "description": "Carry human masks to neighbouring frames."},
    {"name": "exports", "description": "COCO, DAVIS, YouTube-VIS, Datumaro and Label Studio, streamed."},
    {"name": "rounds", "description": "Retrain the proxy, score frames, queue the next batch."},
    {"name": "project view", "description": "What the project pages read: overview, a video's timeline, "
     "the embedding map, the rounds; queueing frames by id."},
]


def preload_segmenter(workspace: Workspace) -> None:
    """Build the workspace's click-to-segment backend (:meth:`curator.project.Curator.segmenter`) in
    the background as the server starts. A backend that cannot be built is logged; the first click
    then answers with the reason."""
    from curator.project import Curator

    try:
        Curator(workspace.settings, lambda text: logger.info("%s", text), workspace=workspace).segmenter()
    except Exception as exc:  # a background start-up step must not kill the server
        logger.warning("click-to-segment could not be prepared: %s", exc)


def create_app_from_environment() -> FastAPI:
    """The application for the settings of the environment (``$CURATOR_CONFIG``, ``CURATOR_*``).

    ``curator serve`` hands this factory to uvicorn by its import string
    (``api.app:create_app_from_environment``), so the engine never imports ``api``.
    """
    return create_app(load_settings())


def create_app(settings: Settings, *, runner: JobRunner | None = None, workspace: Workspace | None = None) -> FastAPI:
    """Build the application for ``settings``.

    The job runner starts with the app (lifespan): jobs a previous process left ``running`` are
    queued again or marked ``interrupted`` (``job_max_attempts``) and ``queued`` ones are run. One
    server serves a SQLite database; on PostgreSQL several replicas share one (see docs/scaling.md).

    Args:
        settings: Where data lives and how the service behaves.
        runner: A job runner to use instead of the local thread runner.
        workspace: An open workspace to use instead of opening one from ``settings``.
    """
    workspace = workspace or Workspace(settings)
    if runner is None:  # with serve_jobs off, `curator worker` processes run the jobs
        runner = (
            ThreadJobRunner(workspace, build_handlers(workspace), workers=settings.job_workers)
            if settings.serve_jobs
            else QueueOnlyRunner()
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runner.start()
        if settings.segment_warm:  # the first click should not wait for imports and weights
            threading.Thread(target=preload_segmenter, args=(workspace,), name="curator-segmenter", daemon=True).start()
        try:
            yield
        finally:
            runner.shutdown(wait=True)
            workspace.close()

    app = FastAPI(
        title="curator",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below, behind a key
        redoc_url=None,
        openapi_url=None,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.settings = settings
    app.state.workspace = workspace
    app.state.runner = runner
    # SQLite has one writer, and queuing its writers on a Python lock beats its busy-wait; PostgreSQL
    # writes concurrently (claims skip each other's locked rows), so there the lock only serialises
    app.state.write_lock = threading.Lock() if workspace.db.engine.dialect.name == "sqlite" else NoLock()
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, json_max_bytes=settings.json_max_bytes)
    # Requests are matched against the routers in order: the queue's (claims and submissions, the hot
    # path) come first. No other router has a route its paths also match, so the order decides no route.
    for module in (
        queue, projects, videos, jobs, selections, categories, frames, propagation, exports, rounds, predictions,
        overview,
    ):
        app.include_router(module.router)
    app.include_router(sessions.router)
    app.include_router(web.router)
    app.mount(web.STATIC_PREFIX, web.PageFiles(directory=web.WEB_ROOT), name="static")

    @app.get("/health", tags=["health"])
    def health() -> dict[str, Any]:
        """Liveness check (no key needed)."""
        return {"status": "ok"}

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(_principal: PrincipalDep) -> JSONResponse:
        """The OpenAPI document (any valid key)."""
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_principal: PrincipalDep) -> HTMLResponse:
        """Swagger UI (any valid key or a signed-in browser), from the copy shipped under
        ``api/web/vendor`` (it works offline). The document is inlined: the page's own fetch would carry no key."""
        vendor = f"{web.STATIC_PREFIX}/vendor/swagger-ui"
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="curator API", swagger_ui_parameters={"spec": app.openapi()},
            swagger_js_url=f"{vendor}/swagger-ui-bundle.js", swagger_css_url=f"{vendor}/swagger-ui.css",
            swagger_favicon_url=f"{web.STATIC_PREFIX}/favicon.svg",
        )

    return app
