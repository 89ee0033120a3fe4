"""The local job runner: worker threads pulling job ids from an in-process queue.

The database row is the source of truth: a job id in the queue whose row is no longer ``queued``
(cancelled meanwhile) is skipped, and jobs still ``queued`` when the process stops are picked up
again by the next runner's :meth:`ThreadJobRunner.start` (see :func:`curator.jobs.store.recover_jobs`).

A runner owns the jobs it runs and refreshes their heartbeat. The runner of ``curator serve`` on a
SQLite database holds it (the server lease of :mod:`curator.jobs.owner`: one server per SQLite
file) and at start sweeps the files a crashed process left behind
(:func:`curator.jobs.sweep.sweep_orphans`). On PostgreSQL several servers and ``curator worker``
processes share the database: every runner polls it (``job_poll_seconds``) for jobs another
process queued and for jobs whose runner died, which it queues again (``job_max_attempts``) or
marks ``interrupted``; a job is taken by one conditional write, so it runs once however many
runners see it. A cancel requested through any process reaches the runner at its next heartbeat.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any

from curator.jobs.admission import admit_job
from curator.jobs.base import HandlerMap, JobContext, JobFailed
from curator.jobs.owner import RunnerId, acquire_server_lease, heartbeat, release_server_lease
from curator.jobs.store import cancel_requested_ids, mark_finished, mark_running, recover_jobs, requeue_job
from curator.jobs.sweep import sweep_orphans
from curator.progress import Cancelled
from curator.store.models import Job
from curator.store.storage import INSUFFICIENT_STORAGE, OUT_OF_SPACE_MESSAGE, out_of_space
from curator.workspace import Workspace

log = logging.getLogger(__name__)


def _is_cancellation(exc: BaseException) -> bool:
    # propagators raise their own PropagationCancelled; match by name to keep this module free of them
    return isinstance(exc, Cancelled) or type(exc).__name__.endswith("Cancelled")


class ThreadJobRunner:
    """Runs jobs on ``workers`` local threads.

    Args:
        workspace: Database and blobs the handlers use.
        handlers: Handler per job kind.
        workers: Number of worker threads.
        server: The runner of a server (``curator serve``): on SQLite it takes the server lease and
            sweeps orphan files at start. ``curator worker`` runners pass False.

    Attributes:
        runner_id: This runner's id, written as the owner of the jobs it runs.
    """

    def __init__(self, workspace: Workspace, handlers: HandlerMap, workers: int = 1, *, server: bool = True) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.runner_id = RunnerId.new()
        #: Whether this runner holds the server lease (a server on SQLite).
        self.holds_lease = server and workspace.db.engine.dialect.name == "sqlite"
        self.server = server
        self._local: set[int] = set()  # job ids in the in-process queue, not yet taken by a worker
        self.workspace = workspace
        self.handlers = dict(handlers)
        self.workers = workers
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, JobContext] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._beat: threading.Thread | None = None
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        """Take the database, mark jobs of gone runners ``interrupted``, sweep orphan files, and
        queue the ``queued`` jobs.

        Raises:
            curator.jobs.owner.DatabaseInUse: If another live server holds the database.
        """
        if self.holds_lease:
            acquire_server_lease(self.workspace, self.runner_id)
        try:
            interrupted, queued = recover_jobs(self.workspace)
            if interrupted:
                log.warning("marked %d jobs interrupted after a restart: %s", len(interrupted), interrupted)
            if self.server:
                sweep_orphans(self.workspace, shared=not self.holds_lease)
        except BaseException:
            if self.holds_lease:
                release_server_lease(self.workspace, self.runner_id)
            raise
        self._beat = threading.Thread(target=self._heartbeat, name="curator-job-heartbeat", daemon=True)
        self._beat.start()
        if self.workspace.settings.job_poll_seconds > 0:
            self._poller = threading.Thread(target=self._poll, name="curator-job-poll", daemon=True)
            self._poller.start()
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"curator-job-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for job_id in queued:
            self.submit(job_id)

    def submit(self, job_id: int) -> None:
        """Queue a job id (its row must be committed in state ``queued``); one already waiting in
        this runner's queue is not queued twice."""
        with self._lock:
            if job_id in self._local:
                return
            self._local.add(job_id)
            self._pending += 1
        self._queue.put(job_id)

    def cancel(self, job_id: int) -> None:
        """Signal a running job to stop (the row's ``cancel_requested`` is set by the caller)."""
        with self._lock:
            context = self._running.get(job_id)
        if context is not None:
            context.cancel_event.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; False on timeout. Meant for tests and scripts."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers; running jobs are asked to stop and recorded as ``interrupted``."""
        self._stopping.set()
        with self._lock:
            for context in self._running.values():
                context.cancel_event.set()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join(timeout=30)
        self._threads.clear()
        if self._poller is not None:
            self._poller.join(timeout=10)
            self._poller = None
        if self._beat is not None:
            self._beat.join(timeout=10)
            self._beat = None
            if self.holds_lease:
                release_server_lease(self.workspace, self.runner_id)

    def _spawner(self, project_id: int | None, created_by: int | None) -> Callable[[str, dict[str, Any]], int]:
        """What a running job's :meth:`JobContext.follow_up` calls: admit a job and run it here."""

        def spawn(kind: str, params: dict[str, Any]) -> int:
            with self.workspace.db.session() as session:
                job, _created = admit_job(session, self, kind, project_id, params, created_by)
                return int(job.id)

        return spawn

    def _heartbeat(self) -> None:
        """Refresh the lease and running jobs' heartbeat; stop jobs another process took over."""
        interval = max(0.01, float(self.workspace.settings.runner_heartbeat_seconds))
        while not self._stopping.wait(interval):
            try:
                with self._lock:
                    running = dict(self._running)
                with self.workspace.db.session() as session:
                    lost = heartbeat(session, self.runner_id, list(running))
                    cancelled = cancel_requested_ids(session, list(running))
                for job_id in lost:
                    log.warning("job %s is no longer this runner's (marked by another process); stopping it", job_id)
                    running[job_id].cancel_event.set()
                for job_id in cancelled:  # asked through another process (a replica's API)
                    running[job_id].cancel_event.set()
            except Exception:  # a busy or full database: try again at the next beat
                log.exception("job heartbeat failed")

    def _poll(self) -> None:
        """Take up jobs queued by other processes, and recover those of runners that died."""
        interval = max(0.01, float(self.workspace.settings.job_poll_seconds))
        while not self._stopping.wait(interval):
            try:
                interrupted, queued = recover_jobs(self.workspace)
                if interrupted:
                    log.warning("marked %d jobs of gone runners interrupted: %s", len(interrupted), interrupted)
                for job_id in queued:
                    self.submit(job_id)
            except Exception:  # a busy or unreachable database: try again at the next poll
                log.exception("job poll failed")

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                self._local.discard(job_id)
            try:
                if not self._stopping.is_set():
                    self._run(job_id)
            except Exception:  # never let a worker thread die: the job row records the failure
                log.exception("job %s: runner error", job_id)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _run(self, job_id: int) -> None:
        with self.workspace.db.session() as session:
            if not mark_running(session, job_id, str(self.runner_id)):
                return
            job = session.get(Job, job_id)
            assert job is not None
            context = JobContext(self.workspace, job.id, job.kind, job.project_id, dict(job.params or {}))
            context.spawn = self._spawner(job.project_id, job.created_by)
            cancel_requested = job.cancel_requested
            attempts = int(job.attempts or 0)
        if cancel_requested:
            context.cancel_event.set()
        handler = self.handlers.get(context.kind)
        with self._lock:
            self._running[job_id] = context
        state, result, code, error = "succeeded", None, None, None
        try:
            if handler is None:
                raise JobFailed("unknown_job_kind", f"no handler for job kind {context.kind!r}")
            result = handler(context)
        except JobFailed as exc:
            state, code, error = "failed", exc.code, exc.message
        except BaseException as exc:
            if _is_cancellation(exc):
                if self._stopping.is_set():
                    state, code, error = "interrupted", "interrupted", "the server stopped while this job ran"
                else:
                    state, code, error = "cancelled", "cancelled", "cancelled on request"
            elif out_of_space(exc):
                log.error("job %s (%s) failed: out of disk space: %s", job_id, context.kind, exc)
                state, code, error = "failed", INSUFFICIENT_STORAGE, OUT_OF_SPACE_MESSAGE
            else:
                log.error("job %s (%s) failed:\n%s", job_id, context.kind, traceback.format_exc())
                state, code, error = "failed", "internal_error", f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, Exception):
                    raise
        finally:
            with self._lock:
                self._running.pop(job_id, None)
        with self.workspace.db.session() as session:
            retry = state == "interrupted" and attempts < self.workspace.settings.job_max_attempts
            if retry and requeue_job(session, job_id, str(self.runner_id)):  # another runner takes it up
                return
            mark_finished(session, job_id, state, result=_jsonable(result), error_code=code, error=error)


def _jsonable(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    if not isinstance(result, dict):
        return {"value": result}
    return result
