"""Every export's layout and contents, read back in this venv: zips in each tool's layout with the
frames in them, JSON alone when asked, masks equal to the stored ones pixel for pixel, category names
and colours of the project's schema, ``score`` rather than ``confidence``, and the Label Studio round
trip (export, label as a person accepting the pre-annotations would, import: the same masks as human).
tests/test_export_tools.py loads the same exports with FiftyOne, Datumaro and label-studio-converter."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from export_fixtures import COLORS, NAMES, SIZE, Built, build, unzip
from PIL import Image

from curator.annotate.masks import DAVIS_PALETTE, decode_rle
from curator.export import EXPORTERS, brush
from curator.export.zipstream import ZipStream


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("exports"))


def _export(built: Built, tmp: Path, fmt: str, include: str = "all", images: bool | None = None) -> Path:
    return built.project.export(fmt, include=include, dest=tmp / f"{fmt}-{include}-{images}", images=images)


def _frame_key(path: str) -> tuple[str, int]:
    video, name = path.rsplit("/", 2)[-2:]
    return video, int(name.split(".")[0])


def _same(a: np.ndarray, b: np.ndarray, what: Any) -> None:
    assert a.shape == b.shape and np.array_equal(a.astype(bool), b.astype(bool)), what


def _blob(built: Built, key: tuple[str, int]) -> bytes:
    return built.project.image_path(built.frame_ids[key]).read_bytes()


def test_zips_with_images_by_default_json_alone_on_request(built: Built, tmp_path: Path) -> None:
    """As a user hands a dataset on: a zip in the tool's layout with the images; COCO, YouTube-VIS
    and Label Studio as bare JSON when asked (Label Studio's tasks JSON is what it imports, so it is
    the default there)."""
    for fmt, zipped in (("coco", True), ("ytvis", True), ("labelstudio", False), ("davis", True), ("datumaro", True)):
        assert EXPORTERS[fmt].media()[1] == ("zip" if zipped else "json"), fmt
        default = _export(built, tmp_path, fmt)
        assert default.suffix == (".zip" if zipped else ".json"), fmt
        assert zipfile.is_zipfile(_export(built, tmp_path, fmt, images=True)), fmt
    for fmt in ("coco", "ytvis", "labelstudio"):
        json.loads(_export(built, tmp_path, fmt, images=False).read_text())


def test_coco_zip_layout_masks_names_and_attributes(built: Built, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    root = unzip(_export(built, tmp_path, "coco", images=True), tmp_path / "coco")
    coco = COCO(str(root / "annotations" / "instances_default.json"))
    expected = built.expected("all")
    assert {_frame_key(i["file_name"]) for i in coco.imgs.values()} == set(expected)
    for image in coco.imgs.values():
        key = _frame_key(image["file_name"])
        assert (root / "images" / image["file_name"]).read_bytes() == _blob(built, key)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert {a["object_id"] for a in anns} == set(expected[key]), key
        for ann in anns:
            _same(coco.annToMask(ann), expected[key][ann["object_id"]], (key, ann["object_id"]))
            category = coco.loadCats(ann["category_id"])[0]
            assert category["name"] == NAMES[ann["object_id"]] and category.get("color") == COLORS.get(category["name"])
            assert "confidence" not in ann and ann["score"] == pytest.approx(built.confidence.get(key, 1.0))
            assert ann["attributes"] == {"object_id": ann["object_id"], "source": built.sources[key]} == {
                "object_id": ann["object_id"], "source": ann["source"]}
    assert 0 not in coco.cats  # COCO readers take category 0 for "no label"


def test_davis_zip_palette_pngs_voc_folders_and_labelmap(built: Built, tmp_path: Path) -> None:
    root = unzip(_export(built, tmp_path, "davis"), tmp_path / "davis")
    labelmap = [line.split(":") for line in (root / "labelmap.txt").read_text().splitlines() if not line.startswith("#")]
    assert [row[0] for row in labelmap] == ["background", "person", "car", "object"]
    assert labelmap[1][1] == "255,0,0" and labelmap[2][1] == "0,0,255"  # the project's colours
    class_index = {name[0]: i for i, name in enumerate(labelmap)}
    expected = built.expected("all")
    items = (root / "ImageSets" / "Segmentation" / "default.txt").read_text().split()
    assert [_frame_key(i + ".png") for i in items] == sorted(expected)
    assert (root / "ImageSets" / "2017" / "default.txt").read_text().split() == sorted({k[0] for k in expected})
    for item in items:
        key = _frame_key(item + ".png")
        with Image.open(root / "Annotations" / f"{item}.png") as png:
            assert png.mode == "P" and png.getpalette()[:9] == DAVIS_PALETTE[:9]
            davis = np.array(png)
        objects = np.array(Image.open(root / "SegmentationObject" / f"{item}.png"))
        classes = np.array(Image.open(root / "SegmentationClass" / f"{item}.png"))
        assert (root / "JPEGImages" / f"{item}.jpg").read_bytes() == _blob(built, key)
        want = np.zeros(SIZE, np.uint8)
        want_class = np.zeros(SIZE, np.uint8)
        for k, mask in expected[key].items():
            want[mask], want_class[mask] = k, class_index[NAMES[k]]
        assert np.array_equal(davis, want) and np.array_equal(objects, want) and np.array_equal(classes, want_class), key


def test_ytvis_zip_tracks_per_object(built: Built, tmp_path: Path) -> None:
    root = unzip(_export(built, tmp_path, "ytvis", images=True), tmp_path / "ytvis")
    data = json.loads((root / "instances.json").read_text())
    assert "exports" in data["info"]["description"]  # named by name, as COCO
    expected = built.expected("all")
    names = {c["id"]: c["name"] for c in data["categories"]}
    for video in data["videos"]:
        keys = [_frame_key(f) for f in video["file_names"]]
        assert keys == sorted(k for k in expected if k[0] == video["name"]) and video["length"] == len(keys)
        assert all((root / "JPEGImages" / f).read_bytes() == _blob(built, k) for f, k in zip(video["file_names"], keys, strict=True))
        tracks = [t for t in data["annotations"] if t["video_id"] == video["id"]]
        assert sorted(t["object_id"] for t in tracks) == [1, 2, 3]
        for track in tracks:
            assert names[track["category_id"]] == NAMES[track["object_id"]]
            for key, seg, source in zip(keys, track["segmentations"], track["sources"], strict=True):
                if track["object_id"] not in expected[key]:
                    assert seg is None and source is None
                    continue
                _same(decode_rle(seg), expected[key][track["object_id"]], (key, track["object_id"]))
                assert source == built.sources[key]


def test_datumaro_zip_one_track_per_object_keyframes_on_human_masks(built: Built, tmp_path: Path) -> None:
    root = unzip(_export(built, tmp_path, "datumaro"), tmp_path / "dm")
    expected = built.expected("all")
    for subset in sorted(root.glob("annotations/*.json")):
        data = json.loads(subset.read_text())
        labels = [label["name"] for label in data["categories"]["label"]["labels"]]
        assert labels == ["person", "car", "object"]
        for position, item in enumerate(data["items"]):
            key = (subset.stem, int(item["id"]))
            assert item["attr"]["frame"] == position and item["attr"]["frame_id"] == built.frame_ids[key]
            assert (root / "images" / subset.stem / item["image"]["path"]).read_bytes() == _blob(built, key)
            by_object = {a["attributes"]["track_id"]: a for a in item["annotations"]}
            assert set(by_object) == set(expected[key])
            for k, ann in by_object.items():
                _same(decode_rle(ann["rle"]), expected[key][k], (key, k))
                assert labels[ann["label_id"]] == NAMES[k] and ann["group"] == k
                assert ann["attributes"]["keyframe"] is (built.sources[key] == "human")


def test_brush_rle_edge_cases() -> None:
    for mask in (np.zeros((3, 5), bool), np.ones((300, 300), bool), np.eye(7, dtype=bool)):
        assert np.array_equal(brush.decode(brush.encode(mask), *mask.shape), mask)
    with pytest.raises(ValueError):
        brush.decode(brush.encode(np.ones((4, 4), bool)), 4, 5)


def _as_labelled(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Label Studio's JSON export after a person accepted every pre-annotation (kept the annotations)."""
    out = []
    for n, task in enumerate(tasks, start=1):
        source = (task.get("annotations") or task.get("predictions") or [{"result": []}])[0]
        result = [{k: v for k, v in r.items() if k != "score"} for r in source["result"]]
        out.append({"id": n, "data": task["data"], "predictions": task.get("predictions", []),
                    "annotations": [{"id": 100 + n, "result": result, "was_cancelled": False,
                                     "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}]})
    return out


def test_labelstudio_round_trip_stores_the_same_masks_as_human(tmp_path: Path) -> None:
    built = build(tmp_path / "home")
    project = built.project
    tasks = json.loads(_export(built, tmp_path, "labelstudio").read_text())
    expected = built.expected("all", queued=True)
    assert [(t["data"]["video"], t["data"]["frame_index"]) for t in tasks] == sorted(expected)
    for task in tasks:
        key = (task["data"]["video"], task["data"]["frame_index"])
        kind = "annotations" if built.sources.get(key) == "human" else "predictions"
        results = task[kind][0]["result"] if expected[key] else []
        assert {int(r["id"].split("-")[1]) for r in results} == set(expected[key]), key
        for r in results:
            _same(brush.decode(r["value"]["rle"], *SIZE), expected[key][int(r["id"].split("-")[1])], key)
            assert r["value"]["brushlabels"] == [NAMES[int(r["id"].split("-")[1])]]
    assert project.tasks()["open"] == 2
    labelled = tmp_path / "labelstudio-export.json"
    labelled.write_text(json.dumps(_as_labelled(tasks)))
    report = project.import_masks(labelled)
    assert report.unmatched == [] and report.frames == len(expected)
    assert project.tasks()["open"] == 0  # the queued tasks are done
    for key, masks in expected.items():
        stored = {m["object_id"]: m["mask"] for m in project.masks(built.frame_ids[key], ["human"])}
        assert set(stored) == set(masks), key
        for k, mask in masks.items():
            _same(stored[k], mask, (key, k))


def test_labelstudio_regions_drawn_in_label_studio_get_free_object_ids(tmp_path: Path) -> None:
    built = build(tmp_path / "home")
    key = next(k for k in sorted(built.frame_ids) if built.sources.get(k) == "propagated")
    mask = np.zeros(SIZE, bool)
    mask[5:9, 7:30] = True
    task = {"id": 1, "data": {"image": f"/data/local-files/?d=images/{key[0]}/{key[1]:05d}.jpg"},
            "annotations": [{"id": 1, "was_cancelled": False, "result": [
                {"id": "Xy12ab", "type": "brushlabels", "from_name": "label", "to_name": "image",
                 "original_width": SIZE[1], "original_height": SIZE[0],
                 "value": {"format": "rle", "rle": brush.encode(mask), "brushlabels": ["car"]}}]}]}
    path = tmp_path / "drawn.json"
    path.write_text(json.dumps([task]))
    assert built.project.import_masks(path).masks == 1
    stored = built.project.masks(built.frame_ids[key], ["human"])
    assert [m["object_id"] for m in stored] == [1]
    _same(stored[0]["mask"], mask, key)


def test_zip_stream_writes_zip64_for_many_entries() -> None:
    out = ZipStream()
    data = b"".join([out.add(f"f/{i}", b"x") for i in range(66_000)] + list(out.stream("big.json", [b"[1]"])) + list(out.finish()))
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert len(archive.namelist()) == 66_001 and archive.read("f/65999") == b"x" and archive.read("big.json") == b"[1]"
    assert archive.testzip() is None


def test_cli_and_rest_offer_every_format_with_or_without_images(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from api import create_app
    from curator.cli import app as cli_app
    from curator.workspace import Workspace
    from tests.api_fixtures import auth, make_settings, new_key

    settings = make_settings(tmp_path)
    built = build(tmp_path)  # the same home as the settings' (tmp_path / "home")
    built.home.close()
    runner = CliRunner()
    base = ["--project", "exports", "--home", str(settings.home)]
    done = runner.invoke(cli_app, ["export", "--format", "datumaro", "--no-images", "--out", str(tmp_path / "cli"), *base])
    assert done.exit_code == 0, done.output
    names = zipfile.ZipFile(done.output.strip().splitlines()[-1]).namelist()
    assert names and all(n.startswith("annotations/") for n in names)
    done = runner.invoke(cli_app, ["export", "--format", "labelstudio", "--images", "--out", str(tmp_path / "cli"), *base])
    assert done.exit_code == 0 and done.output.strip().endswith("exports-labelstudio-human.zip"), done.output
    bad = runner.invoke(cli_app, ["export", "--format", "voc", *base])
    assert bad.exit_code == 2 and "labelstudio" in bad.output
    workspace = Workspace(settings)
    admin = auth(new_key(workspace, "admin"))
    with TestClient(create_app(settings, workspace=workspace)) as client:
        pid = built.project.id
        r = client.get(f"/projects/{pid}/export?format=labelstudio&include=all&images=true", headers=admin)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        assert "exports-labelstudio-all.zip" in r.headers["content-disposition"]
        assert set(zipfile.ZipFile(io.BytesIO(r.content)).namelist()) >= {"tasks.json", "label_config.xml"}
        r = client.get(f"/projects/{pid}/export?format=coco&images=false", headers=admin)
        assert r.headers["content-type"] == "application/json" and "score" in r.json()["annotations"][0]
        r = client.get(f"/projects/{pid}/export?format=ytvis&images=true", headers=admin)
        assert "instances.json" in zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    workspace.close()


def test_every_format_when_every_exported_object_has_a_category(tmp_path: Path) -> None:
    """With a label schema that covers every exported object, no ``object`` category is added, and
    the id-to-label tables of the DAVIS and Datumaro zips still cover every other object id."""
    import zipfile

    import curator
    from tests.api_fixtures import seed_tasks

    with curator.open(tmp_path / "home", backbone="classic", device="cpu") as home:
        project = home.project_by_id(seed_tasks(home.workspace, "named", 3, (24, 32)))
        lease = project.claim(1)[0]
        mask = np.zeros((24, 32), bool)
        mask[2:10, 3:13] = True
        project.submit(lease.id, {7: mask})
        thing = project.add_category("thing", "#00ff00")
        project.set_object_category(7, thing["id"])
        for fmt in ("coco", "davis", "ytvis", "datumaro", "labelstudio"):
            out = project.export(fmt, include="all", dest=tmp_path / fmt, images=True)
            assert zipfile.is_zipfile(out), fmt
            with zipfile.ZipFile(out) as zf:
                text = " ".join(zf.read(n).decode(errors="ignore") for n in zf.namelist() if n.endswith((".json", ".txt")))
            assert "thing" in text and '"name": "object"' not in text, fmt
