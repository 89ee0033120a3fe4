"""Running a job's per-video parts as Ray tasks (``curator worker --ray ADDRESS``).

The worker process stays the job's runner: it takes the job row, heartbeats it and records its
outcome. Its handlers hand their parts (:mod:`curator.jobs.parts`) to a :class:`RayDispatcher`,
which submits one Ray task per part. A task opens the job's database (the worker's settings travel
with it: the URL, and the home whose ``blobs/`` folder every node mounts at the same path), runs the
part function, and returns its result. Along the way:

- **progress**: a task reports its part's ``(done, total)`` to a small actor (:class:`ProgressBoard`),
  which the worker reads to write the job row's summed progress;
- **cancellation**: a task checks the job row's ``cancel_requested`` (and that the job still runs)
  every half second, and the worker calls ``ray.cancel`` on the job's tasks when the job is asked to
  stop or the worker stops;
- **failures**: an expected failure (:class:`~curator.jobs.base.JobFailed`) comes back as such and
  stops the job's other tasks; a node lost mid-task has Ray run the task again elsewhere (parts are
  idempotent); a worker killed outright takes its tasks with it (Ray ties them to their owner), and
  the job is retried by another worker (``job_max_attempts``).

``import curator`` does not import Ray; this module imports it when a dispatcher is made.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from curator.config import Settings
from curator.jobs.base import JobContext, JobFailed
from curator.jobs.dispatch import Part, PartEnv, PartProgress
from curator.progress import Cancelled
from curator.store.models import Job
from curator.workspace import Workspace

log = logging.getLogger(__name__)

#: Seconds between two checks of the job row inside a task, and between two progress reports.
TASK_CHECK_SECONDS = 0.5
#: Seconds the worker waits for the tasks it cancelled to end before it records the job's outcome.
CANCEL_WAIT_SECONDS = 30.0

_envs: dict[str, PartEnv] = {}
_envs_lock = threading.Lock()


def part_env(settings_json: str) -> PartEnv:
    """The workspace and backbone cache of this Ray worker process for these settings (opened once).

    OpenCV's threads are held to the CPUs Ray gave the task (``OMP_NUM_THREADS``, which Ray sets).
    """
    from curator.jobs.handlers import BackboneCache

    with _envs_lock:
        env = _envs.get(settings_json)
        if env is None:
            threads = int(os.environ.get("OMP_NUM_THREADS") or 0)
            if threads > 0:
                import cv2

                cv2.setNumThreads(threads)
            workspace = Workspace(Settings.model_validate_json(settings_json))
            env = _envs[settings_json] = PartEnv(workspace, BackboneCache(workspace))
        return env


class ProgressBoard:
    """A Ray actor holding the last ``(done, total)`` each running part reported, by part key."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[int, int | None]] = {}

    def report(self, key: str, done: int, total: int | None) -> None:
        """Record part ``key``'s progress."""
        self._parts[key] = (done, total)

    def take(self, prefix: str) -> dict[str, tuple[int, int | None]]:
        """The progress of the parts whose key starts with ``prefix`` (one dispatch's parts)."""
        return {k: v for k, v in self._parts.items() if k.startswith(prefix)}

    def drop(self, prefix: str) -> None:
        """Forget one dispatch's parts."""
        for key in [k for k in self._parts if k.startswith(prefix)]:
            del self._parts[key]


class _TaskChecks:
    """A task's progress callback (to the board, throttled) and cancel check (the job row, throttled)."""

    def __init__(self, workspace: Workspace, job_id: int, board: Any, key: str) -> None:
        self.workspace = workspace
        self.job_id = job_id
        self.board = board
        self.key = key
        self._reported = 0.0
        self._checked = 0.0
        self._stop = False

    def progress(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._reported >= TASK_CHECK_SECONDS or (total is not None and done >= total):
            self._reported = now
            self.board.report.remote(self.key, int(done), None if total is None else int(total))

    def cancelled(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._checked >= TASK_CHECK_SECONDS:
            self._checked = now
            with self.workspace.db.session() as session:
                row = session.execute(select(Job.cancel_requested, Job.state).where(Job.id == self.job_id)).one_or_none()
            self._stop = row is None or bool(row.cancel_requested) or row.state != "running"
        return self._stop


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (so the worker can raise it as it was), else a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def run_part(settings_json: str, part: Part, params: dict[str, Any], job_id: int, board: Any, key: str) -> tuple[Any, ...]:
    """The body of a part's Ray task (module level, so every node imports it by name).

    Returns:
        ``("ok", result)``, ``("failed", code, message)`` for a :class:`JobFailed`, ``("cancelled",)``,
        or ``("error", exception, traceback text)``.
    """
    env = part_env(settings_json)
    checks = _TaskChecks(env.workspace, job_id, board, key)
    try:
        return ("ok", part(env, params, checks.progress, checks.cancelled))
    except JobFailed as exc:
        return ("failed", exc.code, exc.message)
    except Cancelled:
        return ("cancelled",)
    except Exception as exc:
        return ("error", _portable(exc), traceback.format_exc())


def _outcome(value: tuple[Any, ...]) -> dict[str, Any]:
    """A part's result, or its failure raised here."""
    kind = value[0]
    if kind == "ok":
        return dict(value[1])
    if kind == "failed":
        raise JobFailed(value[1], value[2])
    if kind == "cancelled":
        raise Cancelled("cancelled")
    log.error("a Ray task failed:\n%s", value[2])
    raise value[1]


class RayDispatcher:
    """Runs parts as Ray tasks on the cluster at ``address`` (see the module docstring).

    Args:
        address: The Ray cluster (``HOST:PORT`` of its head, or ``auto``).
        settings: The worker's settings; the tasks open the same database and blob folder with them
            (``home`` made absolute: it must be the same path on every node).
        cpus_per_task: Ray CPUs each part holds.
        resources: Custom Ray resources each part needs (parts then run only on nodes started with
            ``ray start --resources``, such as a node label).
        poll_seconds: How often the worker looks at its tasks, their progress and the job's cancel.
    """

    def __init__(
        self,
        address: str,
        settings: Settings,
        *,
        cpus_per_task: float = 1.0,
        resources: dict[str, float] | None = None,
        poll_seconds: float = 0.25,
    ) -> None:
        import ray

        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            ray.init(address=address, namespace="curator", log_to_driver=False, configure_logging=False)
        shipped = settings.model_copy(
            update={"home": settings.home.resolve(), "database_url": settings.resolved_database_url}
        )
        self.settings_json = shipped.model_dump_json()
        self.poll_seconds = poll_seconds
        self._task = ray.remote(run_part).options(num_cpus=cpus_per_task, resources=resources or {}, max_retries=2)
        self._board: Any = None
        self._lock = threading.Lock()

    def _progress_board(self) -> Any:
        import ray

        with self._lock:
            if self._board is None:
                self._board = ray.remote(num_cpus=0)(ProgressBoard).remote()
            return self._board

    def map(
        self,
        ctx: JobContext,
        stage: str,
        part: Part,
        items: Sequence[dict[str, Any]],
        estimates: Sequence[int | None] | None = None,
    ) -> list[dict[str, Any]]:
        """One Ray task per item (see :meth:`curator.jobs.dispatch.Dispatcher.map`)."""
        import ray

        if not items:
            return []
        board = self._progress_board()
        token = f"{uuid.uuid4().hex}:"
        progress = PartProgress(stage, list(estimates) if estimates is not None else [None] * len(items))
        refs = [
            self._task.remote(self.settings_json, part, dict(params), ctx.job_id, board, f"{token}{i}")
            for i, params in enumerate(items)
        ]
        position = {ref: i for i, ref in enumerate(refs)}
        results: list[dict[str, Any]] = [{} for _ in items]
        pending = list(refs)
        try:
            while pending:
                if ctx.cancelled():
                    raise Cancelled("cancelled")
                ready, pending = ray.wait(pending, num_returns=1, timeout=self.poll_seconds)
                for ref in ready:
                    results[position[ref]] = _outcome(ray.get(ref))
                    progress.finish(position[ref])
                reported = self._reported(board, token) if board is not None else None
                board = board if reported is not None else None  # unreadable: no progress, the work goes on
                for key, (done, total) in (reported or {}).items():
                    progress.update(int(key[len(token) :]), done, total)
                progress.report(ctx)
        except BaseException:
            self._stop(pending)
            raise
        finally:
            if board is not None:
                board.drop.remote(token)
        return results

    def _reported(self, board: Any, token: str) -> dict[str, tuple[int, int | None]] | None:
        """What the parts of one dispatch reported; ``None`` if the board cannot be read (it is made
        again for the next job), which costs the job its progress bar, not its work."""
        import ray

        try:
            return dict(ray.get(board.take.remote(token), timeout=10))
        except Exception:
            log.warning("the progress board of the Ray parts cannot be read", exc_info=True)
            with self._lock:
                if self._board is board:
                    self._board = None
            return None

    def _stop(self, refs: list[Any]) -> None:
        """Cancel running tasks and give them a moment to end (their transactions roll back)."""
        import ray

        for ref in refs:
            ray.cancel(ref)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_SECONDS)

    def close(self) -> None:
        """Disconnect from the cluster (when this dispatcher connected)."""
        import ray

        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
