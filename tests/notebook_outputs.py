"""Reading an executed notebook's outputs: images, errors, and the ``SUMMARY {json}`` line it prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def outputs(nb: Any) -> list[Any]:
    """Every output of every code cell."""
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]


def images(nb: Any) -> int:
    """How many PNG images the notebook shows."""
    return sum(1 for out in outputs(nb) if "image/png" in out.get("data", {}))


def errors(nb: Any) -> list[str]:
    """``ename: evalue`` of every error output."""
    return [f"{out.get('ename')}: {out.get('evalue')}" for out in outputs(nb) if out.output_type == "error"]


def summary(nb: Any) -> dict[str, Any]:
    """The ``SUMMARY {json}`` line the notebook printed."""
    for out in outputs(nb):
        if out.output_type == "stream" and out.name == "stdout":
            for line in out.text.splitlines():
                if line.startswith("SUMMARY "):
                    return dict(json.loads(line.removeprefix("SUMMARY ")))
    raise AssertionError("the notebook printed no SUMMARY line")


def execute(notebook: Path, out: Path, timeout: int) -> Any:
    """Run ``notebook`` top to bottom in a kernel started in its folder; write the result to ``out``.

    The committed file stays as it is. Raises ``CellExecutionError`` on the first failing cell.
    """
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    client.execute()
    nbformat.write(nb, out)
    return nb
