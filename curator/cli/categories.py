"""``curator categories``: the label schema of a project (categories, and each object id's category).
Each command is a thin call into :class:`curator.project.Project`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from curator.cli.common import ConfigOpt, HomeOpt, ProjectOpt, fail, open_project

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

categories_app = typer.Typer(
    help="Label categories of a project: `curator categories` lists them, `add` adds one, `assign` "
    "gives an object id a category. Without categories every mask exports as `object`.",
)


def _line(c: dict[str, Any]) -> str:
    objects = ", ".join(str(o) for o in c["objects"]) or "none"
    return f"{c['id']:<5} {c['name']:<24} {c['color']}  objects: {objects}"


@categories_app.callback(invoke_without_command=True)
def list_categories(
    ctx: typer.Context,
    project: ProjectOpt = "default",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the project's categories: id, name, colour and the object ids that have each."""
    if ctx.invoked_subcommand is not None:
        return
    with open_project(home, config, project) as p:
        rows = p.categories()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo("\n".join(_line(c) for c in rows) or "no categories: every mask exports as 'object'")


@categories_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Category name, unique in the project.")],
    color: Annotated[str, typer.Option("--color", help="Display colour as '#rrggbb'.")] = "#ff0000",
    project: ProjectOpt = "default",
    as_json: JsonOpt = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add a category with its display colour."""
    with open_project(home, config, project) as p:
        row = p.add_category(name, color)
    typer.echo(json.dumps(row, indent=2) if as_json else f"category {row['id']}: {row['name']} {row['color']}")


@categories_app.command("assign")
def assign(
    object_id: Annotated[int, typer.Argument(help="Object id (1..255) as in the masks.")],
    category: Annotated[str, typer.Argument(help="Category name or id; 'none' removes the object's category.")],
    project: ProjectOpt = "default",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Give object OBJECT_ID (the same object on every frame of a video) a category."""
    with open_project(home, config, project) as p:
        category_id: int | None = None
        if category.lower() != "none":
            found = [c for c in p.categories() if c["name"] == category or str(c["id"]) == category]
            if not found:
                names = ", ".join(c["name"] for c in p.categories()) or "none"
                raise fail(f"no category {category!r} in project {p.name!r}; categories: {names}")
            category_id = int(found[0]["id"])
        p.set_object_category(object_id, category_id)
    typer.echo(f"object {object_id}: " + (category if category_id is not None else "no category"))
