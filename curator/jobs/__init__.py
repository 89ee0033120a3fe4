"""Jobs: long work as database rows run by a runner (local threads by default).

``ThreadJobRunner(workspace, handlers).start()`` marks jobs a previous process left ``running`` as
``interrupted`` (retryable) and re-queues the ``queued`` ones, so no job is silently lost.
"""

from curator.jobs.base import HandlerMap, JobContext, JobFailed, JobHandler, JobRunner
from curator.jobs.handlers import BackboneCache, engine_handlers, propagate_video
from curator.jobs.store import (
    create_job,
    find_active_job,
    get_job,
    recover_jobs,
    request_cancel,
    retry_job,
)
from curator.jobs.thread import ThreadJobRunner

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
