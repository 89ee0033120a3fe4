"""The database: ``curator db upgrade`` and ``curator db status``."""

from __future__ import annotations

import json

import typer

from curator.cli.common import ConfigOpt, HomeOpt, fail, make_settings

db_app = typer.Typer(help="The database: its schema revision, and upgrading it in place.", no_args_is_help=True)


def _engine(home: HomeOpt, config: ConfigOpt) -> tuple[object, str]:
    from sqlalchemy.engine import make_url

    from curator.store.db import make_engine

    settings = make_settings(home, config)
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    return make_engine(url), make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Upgrade the database's schema to this version's, in place (no row is lost).

    A database made before migrations existed is recognised and upgraded too; one made by a newer
    curator is refused. Safe to run while other processes start: one migrates, the others wait.
    """
    from sqlalchemy.exc import OperationalError

    from curator.store.migrate import SchemaOutOfDateError
    from curator.store.migrate import upgrade as run_upgrade

    engine, shown = _engine(home, config)
    try:
        report = run_upgrade(engine)  # type: ignore[arg-type]
    except SchemaOutOfDateError as exc:
        raise fail(str(exc)) from None
    except OperationalError as exc:
        raise fail(f"cannot reach the database {shown}: {exc.orig}") from None
    finally:
        engine.dispose()  # type: ignore[attr-defined]
    if not report.changed:
        typer.echo(f"{shown}: already at revision {report.after}")
        return
    was = report.before or ("before migrations" if report.legacy else "empty")
    typer.echo(f"{shown}: upgraded from {was} to revision {report.after}")
    if report.added_columns:
        typer.echo(f"  added columns: {', '.join(report.added_columns)}")


@db_app.command("status")
def status(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Print the database (password hidden), its schema revision and this version's newest, as JSON."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError

    from curator.store.migrate import head, revision_of

    engine, shown = _engine(home, config)
    try:
        revision = revision_of(engine)  # type: ignore[arg-type]
        tables = len(inspect(engine).get_table_names())  # type: ignore[call-overload]
    except OperationalError as exc:
        raise fail(f"cannot reach the database {shown}: {exc.orig}") from None
    finally:
        engine.dispose()  # type: ignore[attr-defined]
    out = {
        "database": shown, "revision": revision, "head": head(), "up_to_date": revision == head(),
        "tables": tables, "made_before_migrations": revision is None and tables > 0,
    }
    typer.echo(json.dumps(out, indent=2))
