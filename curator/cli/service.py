"""The REST service: ``curator serve``, ``curator worker`` and ``curator keys create|list|revoke``."""

from __future__ import annotations

from typing import Annotated

import typer

from curator.cli.common import ConfigOpt, HomeOpt, fail, make_settings, user_errors

#: The service's application factory, which uvicorn imports by name (the engine never imports ``api``).
APP_FACTORY = "api.app:create_app_from_environment"

keys_app = typer.Typer(help="API keys of the REST service (stored hashed; shown once).", no_args_is_help=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind; default from settings (api_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default from settings (api_port).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the REST service (one process: it owns the job runner of its database).

    A second server on a database that a live server holds exits at once with code 2.
    """
    import os

    import uvicorn

    from curator.jobs.owner import DatabaseInUse, server_lease_holder
    from curator.workspace import Workspace

    settings = make_settings(home, config, api_host=host, api_port=port)
    workspace = Workspace(settings)
    try:
        holder = server_lease_holder(workspace)
    finally:
        workspace.close()
    if holder is not None:
        raise fail(str(DatabaseInUse(*holder)))
    # The factory builds its settings from the environment; hand it the options given here, which
    # take precedence there as they do in `make_settings` (explicit value > CURATOR_* > YAML file).
    given = {"CURATOR_CONFIG": config, "CURATOR_HOME": home, "CURATOR_API_HOST": host, "CURATOR_API_PORT": port}
    os.environ.update({name: str(value) for name, value in given.items() if value is not None})
    try:
        uvicorn.run(APP_FACTORY, factory=True, host=settings.api_host, port=settings.api_port, log_level=log_level)
    except SystemExit:  # startup failed: say so plainly if another server took the database meanwhile
        workspace = Workspace(settings)
        try:
            holder = server_lease_holder(workspace)
        finally:
            workspace.close()
        if holder is not None:
            raise fail(str(DatabaseInUse(*holder))) from None
        raise


def worker(
    threads: Annotated[int, typer.Option(min=1, help="Jobs this worker runs at once.")] = 1,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray", metavar="ADDRESS",
            help="Run the per-video work of ingest, embed and propagate jobs as tasks on the Ray cluster "
            "at ADDRESS (HOST:PORT of its head, or 'auto'); every node needs the database and the home "
            "folder at the same path.",
        ),
    ] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run queued jobs from the database until stopped (Ctrl-C or SIGTERM), beside or instead of the
    server's own runner (``serve_jobs: false``).

    Jobs any process queued are taken every ``job_poll_seconds``, one runner per job (a conditional
    write takes it). A worker that dies (kill -9, a lost machine) is found by its stale heartbeat
    and its jobs are queued again for another (``job_max_attempts``); a worker stopped with
    Ctrl-C or SIGTERM hands its running jobs back the same way.

    With ``--ray ADDRESS`` the worker still takes and records the jobs, but ingest (one task per
    file), embed (one per video) and propagate over a project (one per video) run as Ray tasks on
    the cluster, with progress and cancellation reaching them. See docs/scaling.md.
    """
    import signal
    import threading

    from curator.jobs import ThreadJobRunner, engine_handlers
    from curator.workspace import Workspace

    settings = make_settings(home, config)
    with user_errors():
        workspace = Workspace(settings)
    dispatcher = None
    if ray is not None:
        from curator.jobs.ray_dispatch import RayDispatcher

        typer.echo(f"connecting to the Ray cluster at {ray} (Ray retries until its head answers)", err=True)
        try:
            dispatcher = RayDispatcher(ray, settings)
        except ImportError:
            workspace.close()
            raise fail("--ray needs Ray: pip install 'curator[ray]'") from None
        except ConnectionError as exc:
            workspace.close()
            raise fail(f"cannot reach the Ray cluster at {ray}: {exc}") from None
    runner = ThreadJobRunner(workspace, engine_handlers(workspace, dispatcher=dispatcher), workers=threads, server=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    runner.start()
    typer.echo(
        f"worker {runner.runner_id} on {workspace.db.engine.url.render_as_string(hide_password=True)}: "
        f"{threads} thread(s), polling every {settings.job_poll_seconds:g} s"
        + (f", parts on the Ray cluster at {ray}" if ray is not None else "") + "; Ctrl-C stops",
        err=True,
    )
    try:
        stop.wait()
    finally:
        typer.echo("stopping: running jobs go back to the queue (or are marked interrupted)", err=True)
        runner.shutdown(wait=True)
        if dispatcher is not None:
            dispatcher.close()
        workspace.close()


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="admin, annotator or viewer.")],
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project name or id; none = every project (global key).")
    ] = None,
    name: Annotated[str, typer.Option(help="A note saying whose key this is.")] = "",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from curator.store import repo
    from curator.store.keys import create_key
    from curator.store.models import Project
    from curator.workspace import Workspace

    with user_errors():
        workspace = Workspace(make_settings(home, config))
        with workspace.db.session() as session:
            project_id = None
            if project is not None:
                row = session.get(Project, int(project)) if project.isdigit() else None
                project_id = row.id if row is not None else repo.get_project(session, project).id
            key, secret = create_key(session, role, project_id, name)
            key_id = key.id
        # printed only once committed: a key that is shown exists (even if the reader stops early)
        workspace.close()
    scope = "all projects" if project_id is None else f"project {project_id}"
    typer.echo(secret)
    typer.secho(f"key {key_id}: role {role} on {scope}; store it now, it cannot be shown again",
                fg=typer.colors.YELLOW, err=True)


@keys_app.command("list")
def keys_list(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List keys (id, prefix, role, project, state); secrets are never shown."""
    from curator.store.keys import list_keys
    from curator.workspace import Workspace

    workspace = Workspace(make_settings(home, config))
    with workspace.db.session() as session:
        for key in list_keys(session):
            scope = "all" if key.project_id is None else f"project {key.project_id}"
            state = "revoked" if key.revoked_at is not None else "active"
            typer.echo(f"{key.id}\t{key.prefix}...\t{key.role}\t{scope}\t{state}\t{key.name}")
    workspace.close()


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="Key id (see `curator keys list`).")],
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a key; requests with it get 401 from then on (a running server, which trusts a key it
    has looked up for ``key_cache_seconds``, within that many seconds)."""
    from curator.store.keys import revoke_key
    from curator.workspace import Workspace

    workspace = Workspace(make_settings(home, config))
    with workspace.db.session() as session:
        done = revoke_key(session, key_id)
    workspace.close()
    if not done:
        raise fail(f"no active key with id {key_id}")
    typer.echo(f"revoked key {key_id}")
