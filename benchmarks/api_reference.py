"""The bare references of ``curator bench api``: FastAPI + SQLAlchemy doing the queue's writes and nothing else.

Each serves the two calls a bench client makes, over a home seeded by the bench, with the same engine
(:func:`curator.store.db.make_engine`: WAL, ``synchronous=NORMAL``, foreign keys, busy timeout) and
the same uvicorn defaults as ``curator serve``:

* ``POST /projects/{id}/queue/claim``: one ``UPDATE ... RETURNING`` leasing the oldest open tasks;
* ``POST /tasks/{id}/submit``: one conditional ``UPDATE`` marking the task done, the frame's human
  masks deleted and the new ones inserted, in one transaction.

Each write transaction runs under one process-wide lock, as curator's do (SQLite has one writer;
queuing on a Python lock is cheaper than SQLite's busy sleeps). Neither has keys, mask checks or
other routes: the gap between them and curator is what those cost. Both parse bodies with pydantic
models, as any FastAPI app does. They differ in how the handlers are written:

* ``plain`` (the bench's ``reference``) is written the usual way: statements built in the handler, a
  connection taken from the engine per request, dicts returned for FastAPI to serialize;
* ``tuned`` (``reference_tuned``) is written for speed as curator's queue is: statements built once
  with bound parameters, JSON responses made in the handler (a returned ``Response`` skips FastAPI's
  serialization and its worker-thread hop). It is the ceiling of the framework for these writes.

Run as ``python -m benchmarks.api_reference plain|tuned DATABASE_URL PORT``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, Integer, bindparam, delete, insert, select, update

from curator.store.db import make_engine
from curator.store.models import utcnow
from curator.store.repo import ANNOTATIONS, TASKS

#: The lease owner of every claim (the references have no keys).
OWNER = 1
LEASE_SECONDS = 600.0
VARIANTS = ("plain", "tuned")


class ClaimBody(BaseModel):
    """How many tasks to lease."""

    limit: int = 1


class Rle(BaseModel):
    """A COCO RLE, taken as sent."""

    size: list[int]
    counts: str


class MaskBody(BaseModel):
    """One object's mask."""

    object_id: int
    rle: Rle


class SubmitBody(BaseModel):
    """A task's masks."""

    masks: list[MaskBody]


def _annotation_rows(frame_id: int, body: SubmitBody) -> list[dict[str, Any]]:
    return [
        {"frame_id": frame_id, "object_id": m.object_id, "source": "human", "rle": m.rle.model_dump(),
         "confidence": 1.0, "created_at": utcnow()}
        for m in body.masks
    ]


def _plain_routes(app: FastAPI, engine: Engine, lock: threading.Lock) -> None:
    """Claim and submit written the usual way."""

    @app.post("/projects/{project_id}/queue/claim")
    def claim(project_id: int, body: ClaimBody) -> dict[str, Any]:
        pick = (
            select(TASKS.c.id)
            .where(TASKS.c.project_id == project_id, TASKS.c.state == "open")
            .order_by(TASKS.c.priority, TASKS.c.id)
            .limit(body.limit)
        )
        with lock, engine.begin() as conn:
            rows = conn.execute(
                update(TASKS)
                .where(TASKS.c.id.in_(pick.scalar_subquery()), TASKS.c.state == "open")
                .values(state="leased", lease_owner=OWNER, lease_expires_at=time.time() + LEASE_SECONDS,
                        leases=TASKS.c.leases + 1)
                .returning(TASKS.c.id, TASKS.c.frame_id)
            ).all()
        return {"tasks": [{"id": r.id, "frame_id": r.frame_id} for r in rows]}

    @app.post("/tasks/{task_id}/submit")
    def submit(task_id: int, body: SubmitBody) -> dict[str, Any]:
        with lock, engine.begin() as conn:
            frame_id = conn.execute(
                update(TASKS)
                .where(TASKS.c.id == task_id, TASKS.c.state == "leased", TASKS.c.lease_owner == OWNER)
                .values(state="done", submitted_by=OWNER, submitted_at=utcnow(), lease_expires_at=None)
                .returning(TASKS.c.frame_id)
            ).scalar()
            if frame_id is None:
                raise HTTPException(409, "no lease")
            conn.execute(delete(ANNOTATIONS).where(ANNOTATIONS.c.frame_id == frame_id,
                                                   ANNOTATIONS.c.source.in_(("human", "rejected"))))
            conn.execute(insert(ANNOTATIONS), _annotation_rows(frame_id, body))
        return {"task_id": task_id, "frame_id": frame_id, "masks": len(body.masks)}


_CLAIM = (
    update(TASKS)
    .where(
        TASKS.c.id.in_(
            select(TASKS.c.id)
            .where(TASKS.c.project_id == bindparam("p_project"), TASKS.c.state == "open")
            .order_by(TASKS.c.priority, TASKS.c.id)
            .limit(bindparam("p_limit", type_=Integer))
            .scalar_subquery()
        ),
        TASKS.c.state == "open",
    )
    .values(state="leased", lease_owner=OWNER, lease_expires_at=bindparam("p_expires"), leases=TASKS.c.leases + 1)
    .returning(TASKS.c.id, TASKS.c.frame_id)
)
_FINISH = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("p_task"), TASKS.c.state == "leased", TASKS.c.lease_owner == OWNER)
    .values(state="done", submitted_by=OWNER, submitted_at=bindparam("p_done_at"), lease_expires_at=None)
    .returning(TASKS.c.frame_id)
)
_DELETE = delete(ANNOTATIONS).where(
    ANNOTATIONS.c.frame_id == bindparam("p_frame"), ANNOTATIONS.c.source.in_(("human", "rejected"))
)


def _tuned_routes(app: FastAPI, engine: Engine, lock: threading.Lock) -> None:
    """Claim and submit written for speed."""

    @app.post("/projects/{project_id}/queue/claim")
    def claim(project_id: int, body: ClaimBody) -> JSONResponse:
        params = {"p_project": project_id, "p_limit": body.limit, "p_expires": time.time() + LEASE_SECONDS}
        with lock, engine.begin() as conn:
            rows = conn.execute(_CLAIM, params).all()
        return JSONResponse({"tasks": [{"id": r.id, "frame_id": r.frame_id} for r in rows]})

    @app.post("/tasks/{task_id}/submit")
    def submit(task_id: int, body: SubmitBody) -> JSONResponse:
        with lock, engine.begin() as conn:
            frame_id = conn.execute(_FINISH, {"p_task": task_id, "p_done_at": utcnow()}).scalar()
            if frame_id is None:
                raise HTTPException(409, "no lease")
            conn.execute(_DELETE, {"p_frame": frame_id})
            conn.execute(insert(ANNOTATIONS), _annotation_rows(frame_id, body))
        return JSONResponse({"task_id": task_id, "frame_id": frame_id, "masks": len(body.masks)})


def create_app(database_url: str, variant: str = "plain") -> FastAPI:
    """A reference app over the database at ``database_url``.

    Args:
        database_url: A database seeded by the bench.
        variant: ``plain`` or ``tuned`` (see the module's docstring).

    Raises:
        ValueError: For another variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    engine = make_engine(database_url)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    (_plain_routes if variant == "plain" else _tuned_routes)(app, engine, threading.Lock())
    return app


def main(argv: list[str]) -> None:
    """Serve a reference app: ``plain|tuned DATABASE_URL PORT``, on loopback."""
    import uvicorn

    variant, database_url, port = argv
    uvicorn.run(create_app(database_url, variant), host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main(sys.argv[1:])
