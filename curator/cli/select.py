"""``curator select``: pick keyframes for labelling with a registered selector."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from curator.cli.common import ConfigOpt, HomeOpt, ProjectOpt, fail, open_project


def select(
    budget: Annotated[int, typer.Option("--budget", "-n", help="Frames to pick.", min=0)],
    strategy: Annotated[
        str | None, typer.Option("--strategy", "-s", help="Selector name (default the settings', `curator`).")
    ] = None,
    params: Annotated[str | None, typer.Option(help='Selector settings as JSON, e.g. \'{"min_gap": 1.0}\'.')] = None,
    project: ProjectOpt = "default",
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    backbone: Annotated[str | None, typer.Option(help="Use embeddings of this backbone (default: best available).")] = None,
    queue: Annotated[bool, typer.Option("--queue/--no-queue", help="Queue every pick as a labelling task.")] = True,
    preannotate: Annotated[
        bool | None,
        typer.Option(
            "--preannotate/--no-preannotate",
            help="Pre-annotate the queued tasks from their videos' human masks (default the settings').",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the picks as JSON.")] = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Pick keyframes for labelling; the picks are stored and queued as tasks.

    `curator claim` leases the queued tasks; `--no-queue` only stores the selection.
    """
    try:
        settings_params = json.loads(params) if params else None
    except json.JSONDecodeError as exc:
        raise fail(f"--params is not valid JSON: {exc}") from None
    if settings_params is not None and not isinstance(settings_params, dict):
        raise fail("--params must be a JSON object")
    with open_project(home, config, project) as target:
        result = target.select(
            budget, strategy, params=settings_params, seed=seed, backbone=backbone, queue=queue, preannotate=preannotate
        )
        paths = {p.frame_id: str(target.image_path(p.frame_id)) for p in result.picks}
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    queued = sum(p.task_id is not None for p in result.picks)
    typer.echo(f"selection {result.selection_id}: {len(result.picks)} frames by {result.strategy}, {queued} queued")
    if result.preannotation is not None:
        pre = result.preannotation
        typer.echo(f"  {pre['pre_annotated']} of {pre['tasks']} tasks pre-annotated"
                   + (f" ({pre['reason']})" if pre["reason"] else ""))
    for p in result.picks:
        task = f"task {p.task_id}" if p.task_id is not None else "not queued"
        typer.echo(
            f"  #{p.rank + 1:<3} frame {p.frame_id:<7} video {p.video_id:<4} t={p.timestamp:8.3f}s "
            f"utility={p.utility:.4f} ({p.reason}) {task}  {paths[p.frame_id]}"
        )
