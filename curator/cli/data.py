"""Data commands: ``curator ingest``, ``curator embed``, ``curator projects``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curator.cli.common import (
    BackboneOpt,
    CheckpointOpt,
    ConfigOpt,
    HomeOpt,
    ProjectOpt,
    open_home,
    open_project,
    progress_bars,
)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Video files (any container PyAV reads).")],
    project: ProjectOpt = "default",
    fps: Annotated[float | None, typer.Option(help="Target candidate frames per second (0 = all).")] = None,
    stride: Annotated[int | None, typer.Option(help="Keep every n-th decoded frame.")] = None,
    backbone: BackboneOpt = None,
    checkpoint: CheckpointOpt = None,
    embed: Annotated[bool, typer.Option("--embed/--no-embed", help="Embed frames while ingesting.")] = True,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Decode videos, detect shots, store sampled frames, and embed them into the project index.

    Re-ingesting a file already in the project is a no-op. A file that is not a decodable video is
    rejected with a message and nothing is stored; the other files still go in.
    """
    with open_home(home, config, sample_fps=fps, sample_stride=stride, backbone_checkpoint=checkpoint) as curator:
        target = curator.project(project)
        failures = 0
        for path in paths:
            with progress_bars() as progress:
                report = target.ingest(path, backbone=backbone, embed=embed, skip_bad=True, progress=progress)
            for bad, message in report.rejected.items():
                failures += 1
                typer.secho(f"rejected {bad}: {message}", fg=typer.colors.RED, err=True)
            for result in report.results:
                if result.created:
                    typer.echo(
                        f"{path}: video {result.video_id}, {result.decoded_frames} frames decoded, "
                        f"{result.frames} stored, {result.shots} shots, {result.embedded} embedded"
                        + (f" ({result.backbone})" if result.backbone else "")
                    )
                    dup = report.near_duplicates.get(result.video_id)
                    if dup is not None and dup.count:
                        typer.secho(
                            f"  {dup.count} of {dup.checked} frames nearly duplicate frames of other videos "
                            f"(cosine >= {dup.threshold}), e.g. frame {dup.examples[0][0]} ~ frame {dup.examples[0][1]}",
                            fg=typer.colors.YELLOW,
                        )
                else:
                    typer.echo(
                        f"{path}: already ingested as video {result.video_id} ({result.frames} frames); skipped"
                    )
        if failures:
            raise typer.Exit(2)


def embed(
    project: ProjectOpt = "default",
    backbone: BackboneOpt = None,
    checkpoint: CheckpointOpt = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Embed every stored frame of a project that has no embedding under the backbone yet."""
    with open_project(home, config, project, backbone_checkpoint=checkpoint) as target, progress_bars() as bars:
        done = target.embed(backbone, progress=bars)
        name = target.home.backbone(backbone).name
    typer.echo(f"embedded {done} frames with {name}")


def projects(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List projects (id, name) with their video and frame counts."""
    with open_home(home, config) as curator:
        rows = curator.projects()
    if not rows:
        typer.echo("no projects yet; `curator ingest VIDEO --project NAME` makes one")
    for p in rows:
        typer.echo(f"{p.id}\t{p.name}: {p.videos} videos, {p.frames} frames")
