"""The job runner protocol, the context a job handler runs in, and the errors handlers raise.

A *job* is a row in the ``jobs`` table (see :mod:`curator.store.models`); a *handler* is a
function ``(JobContext) -> dict | None`` registered under the job's ``kind``; a *runner* executes
queued job ids with the handlers. :class:`~curator.jobs.thread.ThreadJobRunner` runs them on local
threads; a Ray runner can implement the same :class:`JobRunner` protocol later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import update

from curator.store.models import Job
from curator.workspace import Workspace


class JobFailed(Exception):
    """Raised by a handler for an expected failure; stored on the job as ``error_code`` and ``error``.

    Args:
        code: Stable machine-readable reason, such as ``video_decode_error``.
        message: Readable explanation for the person who started the job.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class JobContext:
    """What a handler gets: the workspace, its job's id and parameters, progress and cancellation.

    Attributes:
        workspace: Database and blobs.
        job_id: The job's row id.
        kind: The job's kind.
        project_id: The job's project, if any.
        params: The job's JSON parameters.
        cancel_event: Set by the runner when the job is asked to stop.
        progress_interval: Least seconds between two progress writes to the database.
        spawn: Set by the runner: queues a follow-up job ``(kind, params)`` on the same project and
            returns its id (see :meth:`follow_up`); ``None`` where no runner can take one.
    """

    workspace: Workspace
    job_id: int
    kind: str
    project_id: int | None
    params: dict[str, Any]
    cancel_event: threading.Event = field(default_factory=threading.Event)
    progress_interval: float = 0.25
    spawn: Callable[[str, dict[str, Any]], int] | None = None
    _last_write: float = 0.0

    def progress(self, stage: str, done: int, total: int | None) -> None:
        """Record progress; written at most every ``progress_interval`` seconds, and always at the end.

        Matches :class:`curator.progress.ProgressCallback`, so it can be passed to engine stages.
        """
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self._last_write < self.progress_interval:
            return
        self._last_write = now
        with self.workspace.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(
                    stage=stage, progress_done=int(done), progress_total=None if total is None else int(total)
                )
            )

    def follow_up(self, kind: str, params: dict[str, Any]) -> int | None:
        """Queue a job of ``kind`` on this job's project to run after it (through job admission: an
        identical queued job is reused; the project's ``max_queued_jobs`` does not apply, the job that
        asks bounds them). Returns its id, or ``None`` when this job runs without a runner."""
        return None if self.spawn is None else self.spawn(kind, params)

    def cancelled(self) -> bool:
        """Whether the job was asked to stop (a :class:`curator.progress.CancelCheck`)."""
        return self.cancel_event.is_set()


#: A job handler: does the work and returns a JSON-ready result (stored on the job).
JobHandler = Callable[[JobContext], "dict[str, Any] | None"]
#: Handlers by job kind.
HandlerMap = Mapping[str, JobHandler]


class JobRunner(Protocol):
    """Runs queued jobs. Implementations: :class:`~curator.jobs.thread.ThreadJobRunner` (local
    threads) and :class:`QueueOnlyRunner` (leaves them to ``curator worker`` processes)."""

    def start(self) -> None:
        """Start executing; jobs still ``queued`` in the database are picked up."""
        ...

    def submit(self, job_id: int) -> None:
        """Queue a job row (state ``queued``) for execution."""
        ...

    def cancel(self, job_id: int) -> None:
        """Ask a running job to stop at its next cancel check."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs; with ``wait``, let running jobs see a cancel request and finish."""
        ...


class QueueOnlyRunner:
    """A runner that runs nothing: jobs stay ``queued`` in the database for ``curator worker``
    processes to take (``curator serve`` with the ``serve_jobs`` setting off). A cancel reaches the
    worker running the job through the row's ``cancel_requested``, which its heartbeat reads."""

    def start(self) -> None:
        """Nothing to start."""

    def submit(self, job_id: int) -> None:
        """Leave the committed ``queued`` row to the workers."""

    def cancel(self, job_id: int) -> None:
        """Nothing here: the caller has set ``cancel_requested`` on the row."""

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to stop."""
