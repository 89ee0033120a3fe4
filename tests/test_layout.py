"""Layout guards: the selectors source root must never become a package named ``selectors``."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT


def test_selectors_has_no_init() -> None:
    # a top-level package called `selectors` would shadow the standard library module asyncio imports
    assert not (REPO_ROOT / "selectors" / "__init__.py").exists()


def test_asyncio_and_selectors_import_from_repo_root() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, curator_selectors; print(curator_selectors.list_selectors())",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "uniform" in result.stdout and "kcenter" in result.stdout


def test_engine_import_is_light() -> None:
    # heavy libraries load lazily, so `import curator` (and the API start) stay fast
    code = (
        "import sys, curator, curator.config, curator.registry, curator.pool, curator.embed, curator.index; "
        "heavy = [m for m in ('torch', 'timm', 'sam2', 'faiss') if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
