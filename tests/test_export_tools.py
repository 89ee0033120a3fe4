"""curator's exports opened by the real tools, as a user would: FiftyOne 1.22, Datumaro 1.13 (CVAT's
dataset framework) and label-studio-converter, with pycocotools, from PyPI.

The tools live in their own venv (``make tools`` builds ``.venv-tools`` from requirements-tools.lock;
their pins clash with requirements.lock), found at ``$CURATOR_TOOLS_PYTHON`` or
``.venv-tools/bin/python``. Small loader scripts in tests/tools/ run there in a subprocess, on the
export as unzipped (no file moved or written by hand), and print what the tool loaded: masks as COCO
RLE, labels, attributes. Each test checks every mask against the stored one pixel for pixel and
every category name. Without the tools venv the tests skip loudly, and fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from export_fixtures import NAMES, SIZE, Built, build, unzip

from conftest import REPO_ROOT
from curator.annotate.masks import decode_rle

LOADERS = REPO_ROOT / "tests" / "tools"


def tools_python() -> Path:
    """The tools venv's python; skips loudly without it (fails under CI)."""
    given = os.environ.get("CURATOR_TOOLS_PYTHON")
    python = Path(given or REPO_ROOT / ".venv-tools" / "bin" / "python")
    complete = given or (REPO_ROOT / ".venv-tools" / ".installed").is_file()  # `make tools` finished
    if not (complete and os.access(python, os.X_OK)):
        message = (f"!!! EXPORT TOOL TESTS CANNOT RUN: no tools venv at {python}. Build it with `make tools` "
                   "(FiftyOne, Datumaro, label-studio-converter from requirements-tools.lock) or set CURATOR_TOOLS_PYTHON.")
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return python


def run_tool(script: str, *args: str | Path, work: Path) -> dict[str, Any]:
    """Run a loader script with the tools venv; returns the JSON it wrote (its last argument)."""
    out = work / f"{script}-{len(list(work.glob('*.out.json')))}.out.json"
    env = {**os.environ, "FIFTYONE_DATABASE_DIR": str(work / "fiftyone-db"), "FIFTYONE_DO_NOT_TRACK": "true",
           "FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_DATASET_ZOO_DIR": str(work / "zoo"),
           "FIFTYONE_DEFAULT_DATASET_DIR": str(work / "fiftyone"), "HOME": str(work)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(tools_python()), str(LOADERS / script), *map(str, args), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, dict[str, Path], Path]:
    tools_python()
    work = tmp_path_factory.mktemp("tools")
    built = build(work / "project")
    roots = {}
    for fmt, images in (("coco", True), ("davis", None), ("datumaro", None)):
        path = built.project.export(fmt, include="all", dest=work / "out", images=images)
        roots[fmt] = unzip(path, work / fmt)
    return built, roots, work


def _key(path: str) -> tuple[str, int]:
    video, frame = path.replace("\\", "/").rsplit("/", 2)[-2:]
    return video, int(frame.split(".")[0])


def _same(rle: dict[str, Any], mask: np.ndarray, what: Any) -> None:
    decoded = decode_rle(rle)
    assert decoded.shape == mask.shape and np.array_equal(decoded, mask), what


def test_fiftyone_loads_the_coco_zip_with_masks_names_and_scores(exported: tuple[Built, dict[str, Path], Path]) -> None:
    built, roots, work = exported
    loaded = run_tool("load_fiftyone.py", "coco", roots["coco"], work=work)
    assert loaded["fiftyone"].startswith("1.22")
    expected = built.expected("all")
    assert {_key(k) for k in loaded["samples"]} == set(expected)
    for path, detections in loaded["samples"].items():
        key = _key(path)
        assert sorted(d["attributes"]["object_id"] for d in detections) == sorted(expected[key]), key
        for d in detections:
            k = d["attributes"]["object_id"]
            assert d["label"] == NAMES[k] and d["attributes"]["source"] == built.sources[key]
            assert d["confidence"] == pytest.approx(built.confidence.get(key, 1.0))
            _same(d["rle"], expected[key][k], (key, k))


@pytest.mark.parametrize("folder", ["SegmentationObject", "SegmentationClass"])
def test_fiftyone_loads_the_davis_zips_index_masks(exported: tuple[Built, dict[str, Path], Path], folder: str) -> None:
    built, roots, work = exported
    loaded = run_tool("load_fiftyone.py", "segmentation", roots["davis"], folder, work=work)
    labelmap = [line.split(":")[0] for line in (roots["davis"] / "labelmap.txt").read_text().splitlines()[1:]]
    expected = built.expected("all")
    assert {_key(k) for k in loaded["samples"]} == set(expected)
    for path, sample in loaded["samples"].items():
        key = _key(path)
        assert sample["shape"] == list(SIZE), key  # index masks, not palette colours
        want = np.zeros(SIZE, np.uint8)
        for k, mask in expected[key].items():
            want[mask] = k if folder == "SegmentationObject" else labelmap.index(NAMES[k])
        assert sorted(v for v, _ in sample["values"]) == sorted(np.unique(want).tolist()), key
        for value, rle in sample["values"]:
            _same(rle, want == value, (key, value))


def _check_datumaro(loaded: dict[str, Any], built: Built, keyed: Any) -> None:
    expected = built.expected("all")
    assert {keyed(k) for k in loaded["items"]} == set(expected)
    for name, item in loaded["items"].items():
        key = keyed(name)
        assert _key(item["image"]) == key
        assert sorted(m["group"] for m in item["masks"]) == sorted(expected[key]), key
        for m in item["masks"]:
            assert m["label"] == NAMES[m["group"]], (key, m)
            _same(m["rle"], expected[key][m["group"]], (key, m["group"]))


def test_datumaro_detects_and_loads_the_coco_zip(exported: tuple[Built, dict[str, Path], Path]) -> None:
    built, roots, work = exported
    loaded = run_tool("load_datumaro.py", roots["coco"], "detect", work=work)
    assert loaded["detected"] == ["coco_instances"]
    assert loaded["labels"] == ["person", "car", "object"]
    for item in loaded["items"].values():  # group is COCO's annotation order: take the object id instead
        for m in item["masks"]:
            m["group"] = m["attributes"]["object_id"]
    _check_datumaro(loaded, built, lambda k: _key(k + ".jpg"))


def test_datumaro_loads_the_davis_zip_as_voc_with_the_projects_labels(exported: tuple[Built, dict[str, Path], Path]) -> None:
    built, roots, work = exported
    loaded = run_tool("load_datumaro.py", roots["davis"], "voc_instance_segmentation", work=work)
    assert "voc_instance_segmentation" in loaded["detected"]
    assert loaded["labels"] == ["background", "person", "car", "object"]  # index 1 is the project's, not aeroplane
    _check_datumaro(loaded, built, lambda k: _key(k + ".jpg"))


def test_datumaro_loads_the_datumaro_zip_with_one_track_per_object(exported: tuple[Built, dict[str, Path], Path]) -> None:
    built, roots, work = exported
    loaded = run_tool("load_datumaro.py", roots["datumaro"], "datumaro", work=work)
    assert loaded["detected"] == ["datumaro"]
    _check_datumaro(loaded, built, lambda k: _key(k + ".jpg"))
    for name, item in loaded["items"].items():
        key = _key(name + ".jpg")
        assert item["attributes"]["frame_id"] == built.frame_ids[key]
        for m in item["masks"]:
            assert m["attributes"]["track_id"] == m["group"] == m["attributes"]["object_id"]
            assert m["attributes"]["keyframe"] is (built.sources[key] == "human")


def test_labelstudio_converter_reads_the_tasks_and_their_round_trip_imports(exported: tuple[Built, dict[str, Path], Path]) -> None:
    _, _, work = exported
    built = build(work / "ls-project")  # its own project: the import below changes the masks
    root = unzip(built.project.export("labelstudio", include="all", dest=work / "ls-out", images=True), work / "ls-zip")
    (work / "ls").mkdir()
    loaded = run_tool("check_labelstudio.py", root / "tasks.json", root / "label_config.xml", work / "ls", work=work)
    expected = built.expected("all", queued=True)
    assert sorted((t["data"]["video"], t["data"]["frame_index"]) for t in loaded["tasks"].values()) == sorted(expected)
    for n, task in loaded["tasks"].items():
        key = (task["data"]["video"], task["data"]["frame_index"])
        assert (root / task["data"]["image"].split("?d=", 1)[1]).read_bytes() == built.project.image_path(built.frame_ids[key]).read_bytes()
        assert sorted(int(r["id"].split("-")[1]) for r in task["regions"]) == sorted(expected[key]), key
        for region in task["regions"]:
            k = int(region["id"].split("-")[1])
            assert region["labels"] == [NAMES[k]]
            _same(region["rle"], expected[key][k], (key, k))
            # the converter's BRUSH_TO_PNG export, configured by the export's label_config.xml
            png = next(rle for name, rle in task["converted"].items() if name.endswith(f"-label-{NAMES[k]}-0.png") and name.startswith(f"{100 + int(n)}-"))
            _same(png, expected[key][k], (key, k, "png"))
    # import the tool-written Label Studio export: every mask comes back as a human mask, identical
    report = built.project.import_masks(loaded["export"])
    assert report.unmatched == [] and report.frames == len(expected)
    for key, masks in expected.items():
        stored = {m["object_id"]: m["mask"] for m in built.project.masks(built.frame_ids[key], ["human"])}
        assert set(stored) == set(masks), key
        for k, mask in masks.items():
            assert np.array_equal(stored[k], mask), (key, k)
