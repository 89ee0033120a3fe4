"""Where a job's per-video work runs: in the job's own process, or as tasks on a Ray cluster.

A job handler that works video by video (ingest of several files, embed, propagate over a project)
describes each video's work as a *part*: a module-level function
``part(env, params, progress, cancel) -> dict`` (see :data:`Part`) and the JSON ``params`` of one
video. It hands the parts to a :class:`Dispatcher`, which runs them and returns their results in
order, while it sums the parts' progress into the job row and passes the job's cancellation on:

- :class:`LocalDispatcher` (the default) runs the parts one after another in the handler's thread,
  with the handler's own workspace and backbones;
- :class:`curator.jobs.ray_dispatch.RayDispatcher` (``curator worker --ray ADDRESS``) runs each part as
  a Ray task on any node of the cluster; the task opens the same database (its URL) and the same blob
  folder (a path every node mounts) and runs the same part function.

A part stores its own results (one video's rows, in its own transactions), so a part is the unit
that is retried; parts are idempotent (a video already ingested is found by its content hash,
embedding skips embedded frames, propagation replaces the video's propagated masks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from curator.jobs.base import JobContext
from curator.progress import CancelCheck, ProgressCallback
from curator.workspace import Workspace


@dataclass
class PartEnv:
    """What a part runs with in the process it runs in.

    Attributes:
        workspace: The database and blob store (the job's, opened in this process).
        backbones: Builds a backbone by name, once per process (a
            :class:`curator.jobs.handlers.BackboneCache`).
    """

    workspace: Workspace
    backbones: Callable[[str], Any]


#: One video's work: ``part(env, params, progress, cancel)`` returns a JSON-ready result. It raises
#: :class:`~curator.jobs.base.JobFailed` for an expected failure and
#: :class:`~curator.progress.Cancelled` when ``cancel`` says to stop. It must be a module-level
#: function, so that a Ray worker can import it.
Part = Callable[[PartEnv, dict[str, Any], ProgressCallback, CancelCheck], dict[str, Any]]


@dataclass
class PartProgress:
    """The progress of a job's parts, summed into the job row's ``(stage, done, total)``.

    A part's total is what it reported, else the estimate it was dispatched with, else the mean of
    the totals known (so a job whose later parts have not started yet does not look nearly done).

    Args:
        stage: The job row's stage while the parts run.
        estimates: Per part, its expected total (frames) if known beforehand.
    """

    stage: str
    estimates: Sequence[int | None]
    done: list[int] = field(init=False)
    totals: list[int | None] = field(init=False)
    finished: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.done = [0] * len(self.estimates)
        self.totals = list(self.estimates)

    def update(self, index: int, done: int, total: int | None) -> None:
        """Record part ``index``'s progress (a late report of a finished part is ignored)."""
        if index in self.finished:
            return
        self.done[index] = int(done)
        if total is not None:
            self.totals[index] = int(total)

    def finish(self, index: int) -> None:
        """Part ``index`` is done: whatever it reported last is its total."""
        self.finished.add(index)
        total = self.totals[index]
        self.totals[index] = self.done[index] if total is None else max(total, self.done[index])
        self.done[index] = self.totals[index] or 0

    def summed(self) -> tuple[int, int | None]:
        """``(done, total)`` over every part."""
        known = [t for t in self.totals if t is not None]
        if not known:
            return sum(self.done), None
        mean = sum(known) / len(known)
        total = sum(t if t is not None else round(mean) for t in self.totals)
        return sum(self.done), max(total, sum(self.done))

    def report(self, ctx: JobContext) -> None:
        """Write the sum to the job row (the context throttles the writes)."""
        done, total = self.summed()
        ctx.progress(self.stage, done, total)


class Dispatcher(Protocol):
    """Runs a job's parts (see the module docstring)."""

    def map(
        self,
        ctx: JobContext,
        stage: str,
        part: Part,
        items: Sequence[dict[str, Any]],
        estimates: Sequence[int | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Run ``part`` on each of ``items`` (one JSON ``params`` per video).

        Args:
            ctx: The job: its workspace, progress and cancellation.
            stage: The job row's stage while the parts run.
            part: A module-level part function.
            items: Each part's params.
            estimates: Each part's expected total (frames), for the job's progress.

        Returns:
            The parts' results, in the order of ``items``.

        Raises:
            JobFailed: The first expected failure of a part (the other parts are stopped).
            Cancelled: If the job was asked to stop (the parts are stopped).
        """
        ...

    def close(self) -> None:
        """Release what the dispatcher holds (a cluster connection)."""
        ...


class LocalDispatcher:
    """Runs the parts one after another in the calling thread, with the handler's backbones.

    Args:
        backbones: The backbone factory the parts use (the handlers' :class:`BackboneCache`).
    """

    def __init__(self, backbones: Callable[[str], Any]) -> None:
        self.backbones = backbones

    def map(
        self,
        ctx: JobContext,
        stage: str,
        part: Part,
        items: Sequence[dict[str, Any]],
        estimates: Sequence[int | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Run the parts in turn (see :meth:`Dispatcher.map`)."""
        env = PartEnv(ctx.workspace, self.backbones)
        return run_parts_here(env, stage, part, items, estimates, ctx.progress, ctx.cancelled)

    def close(self) -> None:
        """Nothing to release."""


def run_parts_here(
    env: PartEnv,
    stage: str,
    part: Part,
    items: Sequence[dict[str, Any]],
    estimates: Sequence[int | None] | None,
    progress: ProgressCallback | None,
    cancel: CancelCheck,
) -> list[dict[str, Any]]:
    """Run the parts one after another in this thread, their progress summed into ``progress``
    (what :class:`LocalDispatcher` does for a job; engine calls made outside a job use it directly)."""
    board = PartProgress(stage, list(estimates) if estimates is not None else [None] * len(items))

    def report() -> None:
        if progress is not None:
            done, total = board.summed()
            progress(stage, done, total)

    results = []
    for index, params in enumerate(items):

        def on_part(_stage: str, done: int, total: int | None, index: int = index) -> None:
            board.update(index, done, total)
            report()

        results.append(part(env, dict(params), on_part, cancel))
        board.finish(index)
    report()
    return results
