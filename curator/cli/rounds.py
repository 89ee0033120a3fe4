"""``curator round``: one retrain-and-reselect round in this process."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from curator.cli.common import (
    ConfigOpt,
    HomeOpt,
    ProjectOpt,
    fail,
    open_project,
    progress_bars,
)


def round_(
    project: ProjectOpt = "default",
    budget: Annotated[int, typer.Option("--budget", "-n", help="Frames to queue for the next round.", min=1)] = 10,
    strategy: Annotated[
        str | None, typer.Option("--strategy", "-s", help="Selector for the next batch (default the settings').")
    ] = None,
    propagator: Annotated[str | None, typer.Option(help="Propagator (default: settings.propagator).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    steps: Annotated[int | None, typer.Option(help="Proxy training steps (default 100).", min=1)] = None,
    short_side: Annotated[
        int | None, typer.Option(help="Short side frames are resized to for the backbone (default 224).", min=14)
    ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run one retrain-and-reselect round in this process (the same work as ``POST /projects/{id}/rounds``).

    Propagates from every human mask, trains the proxy model, scores every frame, writes dense labels
    with provenance, selects the next batch across all videos and queues it. Needs human masks
    (`curator submit`, `curator import` or the REST queue) and DINOv2 weights (``CURATOR_BACKBONE_CHECKPOINT`` or the hub).
    Do not run it against a database a running ``curator serve`` is using a round on.
    """
    from curator.jobs.base import JobFailed

    with open_project(home, config, project, seed=seed) as target:
        try:
            with progress_bars() as progress:
                summary = target.round(
                    budget, strategy, progress=progress, propagator=propagator, steps=steps, short_side=short_side
                )
        except JobFailed as exc:
            raise fail(str(exc)) from None
    typer.echo(json.dumps(summary, indent=2, default=str))
