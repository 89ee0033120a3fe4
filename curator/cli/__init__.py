"""The ``curator`` command line (typer): ingest, embed, select, the queue, categories, projects, demo,
serve, worker, round, bench, keys, db.

The CLI is the composition root. Each topic module holds its commands (``data``, ``select``,
``labels``, ``categories``, ``demo``, ``service``, ``rounds``, ``bench``) and ``common`` the shared
options and helpers; this module builds ``app`` from them. Nothing here imports ``api`` or ``curator_selectors``: the service
is started by its import string and selectors come from :func:`curator.cli.common.make_selector`.
Heavy libraries are imported inside the commands so ``curator --help`` is fast.
"""

from __future__ import annotations

import typer

from curator.cli import bench, categories, data, db, demo, labels, rounds, select, service

app = typer.Typer(
    name="curator",
    help="Active-learning curation for video segmentation datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# registration order is the order `curator --help` lists the commands in
app.command()(data.ingest)
app.command()(data.embed)
app.command()(select.select)
app.command()(labels.tasks)
app.command()(labels.claim)
app.command()(labels.submit)
app.command()(labels.release)
app.command()(labels.reopen)
app.command()(labels.reject)
app.command()(labels.preannotate)
app.command("import")(labels.import_)
app.add_typer(categories.categories_app, name="categories")
app.command()(labels.propagate)
app.command("round")(rounds.round_)
app.command()(labels.export)
app.command()(labels.similar)
app.command()(labels.jobs)
app.command()(data.projects)
app.command()(demo.demo)
app.command()(service.serve)
app.command()(service.worker)
app.add_typer(bench.bench_app, name="bench")
app.add_typer(service.keys_app, name="keys")
app.add_typer(db.db_app, name="db")


def main() -> None:
    """Entry point for ``python -m curator``."""
    app()
