"""Click-to-segment: the segmenter registry and ``auto``, each backend on a synthetic disk on noise,
negative clicks, the current mask as input, ``Project.segment``, ``POST /frames/{id}/segment`` over
the real app, and the benchmark's simulated annotator and command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api import create_app
from benchmarks.segment import clicks_to_reach, iou, next_click, simulate
from curator.annotate.masks import decode_rle, encode_rle
from curator.registry import UnknownNameError
from curator.segment import (
    InvalidPromptError,
    SegmentResult,
    choose_segmenter,
    create_segmenter,
    list_segmenters,
    shared_segmenter,
)
from curator.segment.types import LRUCache, check_prompt
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key, seed_frames

H, W = 120, 160
CENTRE, RADIUS = (96, 58), 20  # (x, y) of the disk


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red disk on colour noise (slightly blurred, as a camera would), and its mask."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 1.5)
    yy, xx = np.mgrid[:H, :W]
    disk = (xx - CENTRE[0]) ** 2 + (yy - CENTRE[1]) ** 2 <= RADIUS**2
    colour = np.array([210, 40, 40], np.float64)
    image[disk] = np.clip(rng.normal(0, 12, (int(disk.sum()), 3)) + colour, 0, 255).astype(np.uint8)
    return image, disk


def click_until(segmenter: Any, image: np.ndarray, gt: np.ndarray, clicks: int, key: Any = None) -> list[float]:
    """IoU after each click of the simulated annotator (all clicks and the last mask sent each time)."""
    return simulate(segmenter.segment, image, gt, max_clicks=clicks, stop_at=1.01, key=key)["ious"]  # type: ignore[no-any-return]


def shrinks_on_negative_click(segmenter: Any, image: np.ndarray, gt: np.ndarray) -> None:
    """A mask that spills into a bar left of the disk loses the bar to one negative click there."""
    spill = gt.copy()
    spill[40:80, 20:60] = True
    clicks = [(CENTRE[0], CENTRE[1], True), (35.0, 60.0, False)]
    out = segmenter.segment(image, clicks, None, spill).mask
    assert out.sum() < spill.sum()
    assert not out[55:65, 30:40].any()  # around the negative click
    assert out[CENTRE[1], CENTRE[0]]  # the object stays


# --- registry, prompts, auto ---------------------------------------------------------------------


def test_registry_and_prompt_checks() -> None:
    assert {"grabcut", "feature", "sam2"} <= set(list_segmenters())
    with pytest.raises(UnknownNameError, match="valid names"):
        create_segmenter("nope")
    image, _ = scene()
    prompt = check_prompt(image, [(3, 4, False), [5.5, 6]], (0, 0, W, H), None)
    assert [(c.x, c.y, c.positive) for c in prompt.clicks] == [(3, 4, False), (5.5, 6, True)]
    cases: list[tuple[list[Any], tuple[float, ...] | None, str]] = [
        ([(W, 5, True)], None, "inside the 160x120"),
        ([(-1, 5, True)], None, "inside"),
        ([(1, 2, 3, 4)], None, "a click is"),
        ([], None, "at least one click or a box"),
        ([], (10, 10, 5, 20), "x0 < x1"),
        ([], (0, 0, W + 1, H), "inside"),
    ]
    for points, box, match in cases:
        with pytest.raises(InvalidPromptError, match=match):
            check_prompt(image, points, box, None)
    with pytest.raises(ValueError, match="the mask has shape"):
        check_prompt(image, [(1, 1, True)], None, np.zeros((H, W + 1), bool))
    with pytest.raises(ValueError, match="uint8 RGB"):
        check_prompt(image[..., 0], [(1, 1, True)], None, None)


def test_lru_cache_drops_the_least_recently_used() -> None:
    cache: LRUCache[int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # "b" was used least recently
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2


def test_auto_falls_back_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no waiting for the hub
    for var in ("CURATOR_SAM2_CHECKPOINT", "CURATOR_SAM2_HUB", "CURATOR_BACKBONE_CHECKPOINT"):
        monkeypatch.delenv(var, raising=False)
    choice = choose_segmenter("auto", checkpoint=tmp_path / "missing.safetensors", device="cpu")
    assert choice.name == "grabcut" and choice.fell_back is not None
    assert "no SAM 2 checkpoint" in choice.fell_back and "DINOv2" in choice.fell_back
    choice = choose_segmenter(
        "auto", checkpoint=tmp_path / "missing.safetensors", sam2_checkpoint=tmp_path / "sam2.pt", device="cpu"
    )
    assert choice.name == "grabcut" and "SAM 2" in (choice.fell_back or "") and "does not exist" in (choice.fell_back or "")
    heard: list[str] = []
    options = {"checkpoint": str(tmp_path / "gone.safetensors"), "device": "cpu"}
    first = shared_segmenter("auto", notice=heard.append, **options)
    again = shared_segmenter("auto", notice=heard.append, **options)
    assert first is again and len(heard) == 1 and "'grabcut'" in heard[0]


def test_auto_picks_feature_with_dinov2(dinov2_backbone: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATOR_SAM2_CHECKPOINT", raising=False)
    monkeypatch.delenv("CURATOR_SAM2_HUB", raising=False)
    choice = choose_segmenter("auto", backbone=dinov2_backbone, device="cpu")
    assert choice.name == "feature" and choice.fell_back is None
    assert choice.segmenter.backbone is dinov2_backbone


# --- backends on a disk on noise -----------------------------------------------------------------


def test_grabcut_reaches_the_disk_in_a_few_clicks() -> None:
    image, gt = scene()
    segmenter = create_segmenter("grabcut")
    ious = click_until(segmenter, image, gt, 3)
    assert max(ious) > 0.8, ious
    result = segmenter.segment(image, [(CENTRE[0], CENTRE[1], True)])
    assert isinstance(result, SegmentResult) and result.backend == "grabcut"
    assert result.mask.shape == (H, W) and result.mask.dtype == bool and 0.0 <= result.score <= 1.0
    # a box alone is GrabCut's own start
    boxed = segmenter.segment(image, [], (CENTRE[0] - 26, CENTRE[1] - 26, CENTRE[0] + 26, CENTRE[1] + 26)).mask
    assert iou(boxed, gt) > 0.8
    # only negative clicks and no mask: nothing
    assert not segmenter.segment(image, [(5, 5, False)]).mask.any()


def test_grabcut_negative_clicks_and_the_current_mask() -> None:
    image, gt = scene()
    segmenter = create_segmenter("grabcut")
    shrinks_on_negative_click(segmenter, image, gt)
    # only negative clicks refine a given mask (nothing without one)
    spill = gt.copy()
    spill[40:80, 20:60] = True
    out = segmenter.segment(image, [(35.0, 60.0, False)], None, spill).mask
    assert out.any() and not out[55:65, 30:40].any()


@pytest.fixture(scope="module")
def feature_segmenter(dinov2_backbone: object) -> Any:
    from curator.segment.feature import FeatureSegmenter

    return FeatureSegmenter(backbone=dinov2_backbone, device="cpu")


def test_feature_reaches_the_disk_and_reuses_its_features(feature_segmenter: Any) -> None:
    image, gt = scene()
    before = feature_segmenter.encoder_passes
    ious = click_until(feature_segmenter, image, gt, 3, key="disk")
    assert max(ious) > 0.8, ious
    assert feature_segmenter.encoder_passes == before + 1  # one encoder pass for every click
    # without a key the pixels are the key: a second call on the same image reuses them too
    feature_segmenter.segment(image, [(CENTRE[0], CENTRE[1], True)])
    result = feature_segmenter.segment(image.copy(), [(CENTRE[0], CENTRE[1], True)])
    assert feature_segmenter.encoder_passes == before + 2
    assert result.backend == "feature" and result.mask.shape == (H, W) and 0.0 <= result.score <= 1.0


def test_feature_negative_clicks_and_the_current_mask(feature_segmenter: Any) -> None:
    image, gt = scene()
    shrinks_on_negative_click(feature_segmenter, image, gt)
    # the current mask counts: the same clicks with a mask of the disk give a mask closer to it than
    # with a mask of the wrong region
    clicks = [(CENTRE[0], CENTRE[1], True)]
    wrong = np.zeros_like(gt)
    wrong[10:110, 5:60] = True
    with_disk = feature_segmenter.segment(image, clicks, None, gt, key="disk").mask
    with_wrong = feature_segmenter.segment(image, clicks, None, wrong, key="disk").mask
    assert iou(with_disk, gt) > iou(with_wrong, gt)
    assert with_wrong[10:110, 5:60].mean() > with_disk[10:110, 5:60].mean()
    assert not feature_segmenter.segment(image, [(5, 5, False)], key="disk").mask.any()


def test_sam2_shapes_and_a_cached_embedding() -> None:
    """Random weights at 256 px: only the plumbing (shapes, cache, mask input) is checked."""
    pytest.importorskip("sam2")
    from curator.segment.sam2_backend import SAM2Segmenter

    segmenter = SAM2Segmenter(random_weights=True, image_size=256, device="cpu")
    image, _ = scene()
    first = segmenter.segment(image, [(CENTRE[0], CENTRE[1], True)], key="disk")
    assert first.backend == "sam2" and first.mask.shape == (H, W) and first.mask.dtype == bool
    assert 0.0 <= first.score <= 1.0 and segmenter.encoder_passes == 1
    clicks = [(CENTRE[0], CENTRE[1], True), (10.0, 10.0, False)]
    second = segmenter.segment(image, clicks, None, first.mask, key="disk")  # its own last logits go back in
    assert second.mask.shape == (H, W) and segmenter.encoder_passes == 1  # the embedding was reused
    edited = np.zeros((H, W), bool)
    edited[20:60, 20:60] = True
    boxed = segmenter.segment(image, clicks, (10, 10, 150, 110), edited, key="disk")  # a mask it did not make
    assert boxed.mask.shape == (H, W) and segmenter.encoder_passes == 1
    segmenter.segment(image[::-1].copy(), clicks, key="flipped")
    assert segmenter.encoder_passes == 2
    with pytest.raises(InvalidPromptError):
        segmenter.segment(image, [(W + 5, 5, True)], key="disk")


def test_sam2_needs_weights_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    from curator.annotate.sam2_backend import SAM2WeightsError

    monkeypatch.delenv("CURATOR_SAM2_CHECKPOINT", raising=False)
    monkeypatch.delenv("CURATOR_SAM2_HUB", raising=False)
    with pytest.raises(SAM2WeightsError, match="--sam2-checkpoint"):
        choose_segmenter("sam2")


# --- the façade and the REST route ---------------------------------------------------------------


def store_scene(workspace: Workspace, name: str) -> tuple[int, int, np.ndarray]:
    """A project with one frame whose JPEG is the disk scene; returns project id, frame id and truth."""
    image, gt = scene()
    project_id, frame_ids = seed_frames(workspace, name, 1, size=(H, W))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 98])
    assert ok
    workspace.blobs.write_bytes_atomic("synthetic/frame.jpg", buf.tobytes())
    return project_id, frame_ids[0], gt


def test_project_segment(tmp_path: Path) -> None:
    import curator
    from curator.labels.masks import InvalidMaskError
    from curator.store.repo import NotFoundError

    with curator.open(tmp_path / "home", backbone="classic", device="cpu") as home:
        project_id, frame_id, gt = store_scene(home.workspace, "segment")
        project = home.project_by_id(project_id)
        result = project.segment(frame_id, [(CENTRE[0], CENTRE[1], True)], backend="grabcut")
        assert result.backend == "grabcut" and result.mask.shape == (H, W)
        again = project.segment(frame_id, [(CENTRE[0], CENTRE[1], True)], mask=encode_rle(result.mask), backend="grabcut")
        assert iou(again.mask, gt) > 0.8
        with pytest.raises(InvalidMaskError, match="size"):
            project.segment(frame_id, [(5, 5, True)], mask=encode_rle(np.zeros((H, W + 1), bool)), backend="grabcut")
        with pytest.raises(InvalidMaskError, match="shape"):
            project.segment(frame_id, [(5, 5, True)], mask=np.zeros((H + 1, W), bool), backend="grabcut")
        with pytest.raises(InvalidPromptError):
            project.segment(frame_id, [(W, 5, True)], backend="grabcut")
        with pytest.raises(NotFoundError):
            home.project("other").segment(frame_id, [(5, 5, True)], backend="grabcut")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Workspace, int, int, np.ndarray]]:
    settings = make_settings(tmp_path, segmenter="grabcut")
    workspace = Workspace(settings)
    project_id, frame_id, gt = store_scene(workspace, "segment")
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace, project_id, frame_id, gt
    workspace.close()


def test_api_segment_clicks_refine_the_mask(api: tuple[TestClient, Workspace, int, int, np.ndarray]) -> None:
    client, workspace, project_id, frame_id, gt = api
    annotator = auth(new_key(workspace, "annotator", project_id))
    points: list[dict[str, Any]] = []
    mask: np.ndarray = np.zeros_like(gt)
    body: dict[str, Any] = {}
    for _ in range(4):
        click = next_click(gt, mask)
        if click is None:
            break
        points.append({"x": click[0], "y": click[1], "positive": click[2]})
        r = client.post(
            f"/frames/{frame_id}/segment",
            json={"points": points, "mask": encode_rle(mask) if mask.any() else None},
            headers=annotator,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        mask = decode_rle(body["mask"])
        if iou(mask, gt) > 0.9:
            break
    assert iou(mask, gt) > 0.8
    assert body["backend"] == "grabcut" and 0.0 <= body["score"] <= 1.0 and body["ms"] > 0
    assert body["mask"]["size"] == [H, W]
    # a box alone, and a named backend
    r = client.post(
        f"/frames/{frame_id}/segment",
        json={"box": [CENTRE[0] - 26, CENTRE[1] - 26, CENTRE[0] + 26, CENTRE[1] + 26], "backend": "grabcut"},
        headers=annotator,
    )
    assert r.status_code == 200 and iou(decode_rle(r.json()["mask"]), gt) > 0.8


def test_api_segment_errors(
    api: tuple[TestClient, Workspace, int, int, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, workspace, project_id, frame_id, _ = api
    annotator = auth(new_key(workspace, "annotator", project_id))
    url = f"/frames/{frame_id}/segment"
    ok = {"points": [{"x": CENTRE[0], "y": CENTRE[1], "positive": True}]}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"points": [{"x": W, "y": 5}]}, 422, "invalid_prompt"),
        ({"points": [{"x": 5, "y": -1}]}, 422, "invalid_prompt"),
        ({"points": []}, 422, "invalid_prompt"),
        ({**ok, "box": [10, 10, 5, 50]}, 422, "invalid_prompt"),
        ({**ok, "box": [1, 2, 3]}, 422, "validation_error"),
        ({**ok, "mask": encode_rle(np.zeros((H, W + 1), bool))}, 422, "invalid_mask"),
        ({**ok, "mask": {"size": [H, W], "counts": [5, 7]}}, 422, "invalid_mask"),
        ({**ok, "backend": "nope"}, 422, "unknown_segmenter"),
        ({**ok, "extra": 1}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        r = client.post(url, json=body, headers=annotator)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    monkeypatch.delenv("CURATOR_SAM2_CHECKPOINT", raising=False)
    monkeypatch.delenv("CURATOR_SAM2_HUB", raising=False)
    r = client.post(url, json={**ok, "backend": "sam2"}, headers=annotator)
    assert r.status_code == 409 and r.json()["code"] == "segmenter_unavailable"
    # roles and scopes: a viewer may not, another project's key does not see the frame, no frame is 404
    r = client.post(url, json=ok, headers=auth(new_key(workspace, "viewer", project_id)))
    assert r.status_code == 403
    other, _ = seed_frames(workspace, "other", 1)
    r = client.post(url, json=ok, headers=auth(new_key(workspace, "annotator", other)))
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.post("/frames/987654/segment", json=ok, headers=annotator)
    assert r.status_code == 404
    assert client.post(url, json=ok).status_code == 401
    spec = client.get("/openapi.json", headers=annotator).json()
    assert {"200", "404", "409", "422"} <= set(spec["paths"]["/frames/{frame_id}/segment"]["post"]["responses"])


# --- the benchmark ---------------------------------------------------------------------------------


def test_simulated_annotator_clicks_the_largest_error() -> None:
    gt = np.zeros((40, 60), bool)
    gt[5:35, 5:25] = True  # missed entirely: first click in its middle
    x, y, positive = next_click(gt, np.zeros_like(gt)) or (0, 0, False)
    assert positive and 13 <= x <= 16 and 14 <= y <= 25  # on the ridge of the distance transform
    pred = gt.copy()
    pred[10:30, 35:55] = True  # a false block bigger than any miss
    pred[5:8, 5:25] = False
    x, y, positive = next_click(gt, pred) or (0, 0, True)
    assert not positive and 35 <= x < 55 and 10 <= y < 30
    assert next_click(gt, gt) is None
    assert clicks_to_reach([0.5, 0.86, 0.91], 0.85) == 2 and clicks_to_reach([0.5, 0.86], 0.9, 20) == 20


def test_cli_bench_segment(tmp_path: Path) -> None:
    from curator.cli import app
    from tests.test_bench_keyframes import make_davis

    root = make_davis(tmp_path / "davis", names=("alpha",), n=4)
    out = tmp_path / "out" / "segment.json"
    result = CliRunner().invoke(
        app,
        ["bench", "segment", "--davis", str(root), "--backends", "grabcut", "--frames", "2",
         "--max-clicks", "3", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    summary = report["backends"]["grabcut"]
    assert summary["frames"] == 2 and 1 <= summary["noc85"] <= 3
    assert {"noc90", "p50_ms", "first_p50_ms"} <= set(summary) and report["settings"]["max_clicks"] == 3
    assert "machine" in report and "| `grabcut` |" in result.output
    bad = CliRunner().invoke(app, ["bench", "segment", "--davis", str(root), "--params", "[1]", "--out", str(out)])
    assert bad.exit_code == 2 and "--params" in bad.output
