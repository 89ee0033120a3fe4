"""Job plumbing of the API: the ``select`` handler, the handler map, submitting, and ``JobPublic``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from api import repo
from api.schemas import ErrorPublic, JobPublic, ProgressPublic
from curator.jobs import JobContext, JobFailed, JobHandler, create_job, engine_handlers
from curator.jobs.base import JobRunner
from curator.store.service_models import Job
from curator.workspace import Workspace


def select_handler(ctx: JobContext) -> dict[str, Any]:
    """Handler of ``select`` jobs: run a selector, store the selection, queue its picks as tasks.

    Params: ``strategy``, ``budget``, ``params`` (selector constructor arguments), ``seed``, ``backbone``.
    """
    from curator.registry import UnknownNameError
    from curator.selection import run_selection
    from curator_selectors import create_selector

    params = ctx.params
    if ctx.project_id is None:
        raise JobFailed("invalid_job", "a select job needs a project")
    try:
        selector = create_selector(params["strategy"], **(params.get("params") or {}))
    except UnknownNameError as exc:
        raise JobFailed("unknown_strategy", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise JobFailed("invalid_params", f"selector {params['strategy']!r}: {exc}") from None
    ctx.progress("select", 0, 1)
    try:
        selection_id, picks = run_selection(
            ctx.workspace, ctx.project_id, selector, int(params["budget"]),
            seed=int(params.get("seed") or 0), backbone=params.get("backbone"), params=params.get("params") or {},
        )
    except LookupError as exc:
        raise JobFailed("no_embeddings", str(exc)) from None
    except ValueError as exc:
        raise JobFailed("invalid_params", str(exc)) from None
    with ctx.workspace.db.session() as session:
        tasks = repo.create_tasks(session, ctx.project_id, selection_id, [(p.frame_id, p.reason) for p in picks])
    ctx.progress("select", 1, 1)
    return {
        "selection_id": selection_id,
        "picks": [
            {"frame_id": p.frame_id, "rank": p.rank, "utility": p.utility, "reason": p.reason,
             "video_id": p.video_id, "frame_index": p.frame_index, "task_id": tasks.get(p.frame_id)}
            for p in picks
        ],
    }


def build_handlers(workspace: Workspace) -> dict[str, JobHandler]:
    """Every handler the service runs: the engine's plus ``select``."""
    from curator.train.job import round_handler

    return {**engine_handlers(workspace), "select": select_handler, "round": round_handler(_make_selector, repo.create_tasks)}


def _make_selector(name: str, params: dict[str, Any]) -> Any:
    from curator_selectors import create_selector

    return create_selector(name, **params)


def start_job(
    session: Session, runner: JobRunner, kind: str, project_id: int | None, params: dict[str, Any], created_by: int
) -> Job:
    """Insert a queued job, commit, and hand it to the runner (in that order, so it is never lost)."""
    job = create_job(session, kind, project_id=project_id, params=params, created_by=created_by)
    session.commit()
    runner.submit(job.id)
    return job


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; they were written as UTC
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def job_public(job: Job) -> JobPublic:
    """The API view of a job row."""
    created, started, finished = _aware(job.created_at), _aware(job.started_at), _aware(job.finished_at)
    total = job.progress_total
    queued_s = (started - created).total_seconds() if started and created else None
    run_s = None
    if started is not None:
        run_s = ((finished or datetime.now(UTC)) - started).total_seconds()
    return JobPublic(
        id=job.id,
        project_id=job.project_id,
        kind=job.kind,
        state=job.state,
        progress=ProgressPublic(
            stage=job.stage, done=job.progress_done, total=total,
            fraction=(min(1.0, job.progress_done / total) if total else None),
        ),
        params={k: v for k, v in (job.params or {}).items() if k != "path"},
        result=job.result,
        error=ErrorPublic(code=job.error_code, detail=job.error or "") if job.error_code else None,
        created_at=created or datetime.now(UTC),
        started_at=started,
        finished_at=finished,
        queued_s=queued_s,
        run_s=run_s,
        attempts=job.attempts,
    )
