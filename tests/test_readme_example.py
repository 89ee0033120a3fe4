"""The README's Python example runs as written and its COCO export loads in pycocotools."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT


def readme_example() -> str:
    """The first python block under the README's "The whole job in Python" heading."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## The whole job in Python", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the README lost its Python example"
    return found.group(1)


def test_readme_example_is_about_ten_lines() -> None:
    lines = [line for line in readme_example().splitlines() if line.strip()]
    assert 8 <= len(lines) <= 14


@pytest.mark.sqlite_only  # checks the SQLite file / the one-server rule of SQLite
def test_readme_example_runs_and_exports_coco(tmp_path: Path) -> None:
    code = readme_example()
    # run from a copy of the paths the example names, in a scratch folder, weight-free and offline
    (tmp_path / "curator" / "data").mkdir(parents=True)
    (tmp_path / "curator" / "data" / "sample.mp4").symlink_to(REPO_ROOT / "curator" / "data" / "sample.mp4")
    env = {**os.environ, "CURATOR_BACKBONE": "classic", "CURATOR_PROPAGATOR": "flow", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "selectors")])}
    env.pop("CURATOR_HOME", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip().splitlines()
    export = tmp_path / out[-1]  # printed relative to the example's working folder
    assert export.is_file() and export.suffix == ".json"
    assert (tmp_path / "curator-data" / "curator.db").is_file()

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(str(export))
    human = [a for a in coco.anns.values() if a["source"] == "human"]
    propagated = [a for a in coco.anns.values() if a["source"] == "propagated"]
    assert len(human) == 8  # one mask on each claimed task
    assert propagated, "propagation stored no masks"
    for ann in coco.anns.values():
        image = coco.imgs[ann["image_id"]]
        decoded = coco.annToMask(ann)
        assert decoded.shape == (image["height"], image["width"])
        assert int(decoded.sum()) == ann["area"] == int(mask_utils.area(ann["segmentation"]))
    # the similar() line printed (frame id, cosine) pairs, best first, without the frame itself
    similar = eval(out[-2])  # a printed list of tuples
    assert len(similar) == 5 and all(-1.0001 <= s <= 1.0001 for _, s in similar)
    assert [s for _, s in similar] == sorted((s for _, s in similar), reverse=True)
