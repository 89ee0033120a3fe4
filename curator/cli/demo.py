"""``curator demo``: the whole slice on a short sample clip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curator.cli.common import (
    CheckpointOpt,
    ConfigOpt,
    HomeOpt,
    cli_notice,
    make_settings,
    progress_bars,
    user_errors,
)


def demo(
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("demo-report"),
    budget: Annotated[int, typer.Option(help="Keyframes to pick.", min=1)] = 8,
    strategy: Annotated[str | None, typer.Option(help="Selector name (default the settings', `curator`).")] = None,
    video: Annotated[Path | None, typer.Option(help="Use this clip instead of the bundled sample.")] = None,
    checkpoint: CheckpointOpt = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the whole slice on a short real sample clip and write a contact sheet and a JSON summary.

    The backbone is ``auto``: DINOv2 when its weights resolve (``--checkpoint`` or
    ``CURATOR_BACKBONE_CHECKPOINT``, else the hub), otherwise the weight-free ``classic`` embedder.
    """
    from curator.demo import run_demo

    with user_errors():
        settings = make_settings(home, config)
        with progress_bars() as progress:
            summary = run_demo(
                settings,
                out,
                strategy=strategy,
                budget=budget,
                video=video,
                checkpoint=checkpoint,
                progress=progress,
                notice=cli_notice,
            )
    typer.echo(
        f"demo: {summary['video']['candidate_frames']} frames, {len(summary['shots'])} shots, "
        f"backbone {summary['backbone']}, {len(summary['picks'])} keyframes by {summary['strategy']} "
        f"covering {summary['shots_covered']} shots (queued as tasks)"
    )
    typer.echo(f"wrote {out / 'contact_sheet.png'} and {out / 'summary.json'}")
