"""Options and helpers shared by the command modules of the ``curator`` CLI.

Every command is a thin call into :class:`curator.project.Project` (opened with :func:`open_home`
or :func:`open_project`); nothing here imports ``api`` or ``curator_selectors``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from curator.config import Settings, load_settings

HomeOpt = Annotated[
    Path | None, typer.Option("--home", help="Data folder (database and blobs); default $CURATOR_HOME or ./curator-data.")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML settings file (see configs/default.yaml).")]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name.")]
BackboneOpt = Annotated[
    str | None, typer.Option("--backbone", help="Embedding backbone: dinov2_vits14, classic, or auto.")
]
CheckpointOpt = Annotated[
    str | None,
    typer.Option("--checkpoint", help="Backbone weights file; default $CURATOR_BACKBONE_CHECKPOINT, then the hub."),
]


def make_settings(home: Path | None, config: Path | None, **overrides: Any) -> Settings:
    """Settings from ``--config``, the environment and the options given (``None`` = not given)."""
    return load_settings(config, home=home, **overrides)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red ``error:`` line; return the exit to raise (``raise fail(...)``)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures into one red line and exit code 2 instead of a traceback."""
    from curator.embed import BackboneWeightsError
    from curator.ingest import VideoDecodeError
    from curator.registry import UnknownNameError
    from curator.store.migrate import SchemaOutOfDateError

    try:
        yield
    except (
        VideoDecodeError, BackboneWeightsError, UnknownNameError, SchemaOutOfDateError, LookupError, ValueError,
        FileNotFoundError,
    ) as exc:
        raise fail(str(exc)) from None


@contextlib.contextmanager
def progress_bars() -> Iterator[Any]:
    """A rich progress display with one bar per stage; yields a ``ProgressCallback``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def cli_notice(message: str) -> None:
    """Print a yellow ``Notice:`` on stderr (fallbacks such as ``auto`` without DINOv2 weights)."""
    typer.secho(f"Notice: {message}", fg=typer.colors.YELLOW, err=True)


@contextlib.contextmanager
def open_home(home: Path | None, config: Path | None, **overrides: Any) -> Iterator[Any]:
    """An open :class:`curator.project.Curator`; expected failures inside become one red ``error:`` line."""
    from curator.project import Curator

    with user_errors():
        curator = Curator(make_settings(home, config, **overrides), notice=cli_notice)
        try:
            yield curator
        finally:
            curator.close()


@contextlib.contextmanager
def open_project(home: Path | None, config: Path | None, project: str, **overrides: Any) -> Iterator[Any]:
    """An existing project of the home (an unknown name is an error that lists the projects)."""
    with open_home(home, config, **overrides) as curator:
        yield curator.project(project, create=False)
