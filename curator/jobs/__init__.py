"""Jobs: long work as database rows run by a runner (local threads by default).

``ThreadJobRunner(workspace, handlers).start()`` takes the database (one server at a time, see
:mod:`curator.jobs.owner`), marks jobs whose runner is gone ``interrupted`` (retryable), sweeps the
files a crash left behind and re-queues the ``queued`` jobs, so no job is silently lost.
"""

from curator.jobs.base import HandlerMap, JobContext, JobFailed, JobHandler, JobRunner
from curator.jobs.handlers import BackboneCache, engine_handlers
from curator.jobs.store import (
    create_job,
    find_active_job,
    get_job,
    recover_jobs,
    request_cancel,
    retry_job,
)
from curator.jobs.thread import ThreadJobRunner
from curator.labels.propagation import propagate_video

__all__ = [
    "BackboneCache",
    "HandlerMap",
    "JobContext",
    "JobFailed",
    "JobHandler",
    "JobRunner",
    "ThreadJobRunner",
    "create_job",
    "engine_handlers",
    "find_active_job",
    "get_job",
    "propagate_video",
    "recover_jobs",
    "request_cancel",
    "retry_job",
]
