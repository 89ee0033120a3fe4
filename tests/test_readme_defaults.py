"""The README's claims about defaults agree with ``Settings`` and ``configs/default.yaml``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from conftest import REPO_ROOT
from curator.config import Settings

README = (REPO_ROOT / "README.md").read_text()


def settings_table() -> dict[str, str]:
    """``{setting: default cell}`` from the README's Configuration table."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([a-z_]+)`", cells[0])
        values = [v.strip().strip("`") for v in cells[1].split(",")] if len(names) > 1 else [cells[1].strip("`")]
        rows.update(zip(names, values, strict=True))
    return rows


def same(value: Any, cell: str) -> bool:
    if cell == "empty":
        return value in ("", None, [])
    if isinstance(value, Path):
        return value == Path(cell)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) == float(cell)
    return str(value) == cell


def test_readme_settings_table_matches_settings() -> None:
    table = settings_table()
    assert {"selector", "propagator", "backbone", "home"} <= set(table)
    defaults = Settings.model_construct()
    wrong = {name: (cell, getattr(defaults, name)) for name, cell in table.items() if not same(getattr(defaults, name), cell)}
    assert wrong == {}


def test_default_yaml_matches_settings() -> None:
    values = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text())
    defaults = Settings.model_construct()
    assert set(values) == set(Settings.model_fields)
    for name, value in values.items():
        expected = getattr(defaults, name)
        assert (Path(value) if isinstance(expected, Path) else value) == expected, name


def test_readme_prose_names_the_same_defaults() -> None:
    assert f"`{Settings.model_fields['selector'].default}` | the default" in README
    assert Settings.model_fields["propagator"].default == "auto"
    # the propagator auto resolves to the one the README measures as the CPU default
    from curator.annotate.choose import AUTO_PROPAGATOR

    assert f"`{AUTO_PROPAGATOR}` (default" in README
