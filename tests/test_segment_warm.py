"""Click-to-segment warmed ahead of the first click: encodings on disk (``curator.segment.cache``),
``Project.warm_segments`` and the ``preannotate`` job that warms queued frames.

The feature segmenter runs the real DINOv2 loading path with a weights file: the shared checkpoint
when present, else a file of random weights written by the test (encodings do not need good weights
to be cached and reused)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from curator.segment.cache import EncodingStore, attach_store, frame_key, weights_id
from curator.store import repo
from curator.workspace import Workspace
from tests.api_fixtures import auth, make_settings, new_key
from tests.conftest import DINOV2_CHECKPOINT
from tests.test_segment import CENTRE, H, W, scene, store_scene


@pytest.fixture(scope="module")
def dinov2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DINOv2 ViT-S/14 weights file: the shared one, or random weights of the same model."""
    if DINOV2_CHECKPOINT.exists():
        return DINOV2_CHECKPOINT
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, num_classes=0, img_size=224)
    path = tmp_path_factory.mktemp("weights") / "dinov2_random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_store_round_trip_and_unreadable_files(tmp_path: Path) -> None:
    store = EncodingStore(tmp_path, "feature-x/../y s224")
    assert store.folder.parent == tmp_path and "/" not in store.folder.name  # the tag is one folder
    key = frame_key("abc", tmp_path / "f.jpg")
    assert store.get(key) is None and key not in store
    grid = np.random.default_rng(0).normal(size=(4, 5, 8)).astype(np.float16)
    store.put(key, {"grid": grid, "hw": np.array([3, 4])})
    assert key in store and store.writes == 1
    back = store.get(key)
    assert back is not None and np.array_equal(back["grid"], grid) and back["hw"].tolist() == [3, 4]
    assert not [p for p in store.path(key).parent.iterdir() if p.name.startswith(".tmp-")]
    store.path(key).write_bytes(b"not an npz")  # a torn or foreign file reads as missing
    assert store.get(key) is None
    # keys without a content hash name the file, and the weights id changes with the file
    assert frame_key(None, tmp_path / "f.jpg") == ("file", str(tmp_path / "f.jpg"))
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"1")
    first = weights_id(weights)
    weights.write_bytes(b"22")
    assert weights_id(weights) != first and weights_id(None) == "default"


def test_feature_encodings_are_shared_through_the_disk(tmp_path: Path, dinov2_file: Path) -> None:
    from curator.embed import create_backbone
    from curator.segment.feature import FeatureSegmenter

    backbone = create_backbone("dinov2_vits14", checkpoint=str(dinov2_file), device="cpu").backbone
    image, _ = scene()
    key = ("frame", "scene")
    first = FeatureSegmenter(backbone=backbone, device="cpu")
    assert attach_store(first, tmp_path) is first.store and first.store is not None
    assert first.warm(image, key) and first.encoder_passes == 1 and key in first.store
    assert not first.warm(image, key) and first.encoder_passes == 1  # warm already
    clicks = [(CENTRE[0], CENTRE[1], True)]
    expected = first.segment(image, clicks, key=key)
    # another process: a new segmenter with the same weights reads the encodings instead of encoding
    second = FeatureSegmenter(backbone=backbone, device="cpu")
    attach_store(second, tmp_path)
    got = second.segment(image, clicks, key=key)
    assert second.encoder_passes == 0 and np.array_equal(got.mask, expected.mask) and got.score == expected.score
    # other weights or another input size never read these encodings
    assert FeatureSegmenter(backbone=backbone, short_side=224).encoding_tag() != first.encoding_tag()
    assert attach_store(object(), tmp_path) is None  # nothing to store for a segmenter without an encoder


def test_sam2_embeddings_are_shared_through_the_disk(tmp_path: Path) -> None:
    """Random weights: the embedding read back gives the very mask the encoded one gave."""
    pytest.importorskip("sam2")
    from curator.segment.sam2_backend import SAM2Segmenter

    segmenter = SAM2Segmenter(random_weights=True, image_size=256, device="cpu")
    store = attach_store(segmenter, tmp_path)
    image, _ = scene()
    clicks = [(CENTRE[0], CENTRE[1], True)]
    assert segmenter.warm(image, "scene") and store is not None and "scene" in store
    expected = segmenter.segment(image, clicks, key="scene")
    assert segmenter.encoder_passes == 1
    segmenter.cache = type(segmenter.cache)(4)  # forget the memory copy, as a new process would
    got = segmenter.segment(image, clicks, key="scene")
    assert segmenter.encoder_passes == 1 and store.reads == 1
    assert np.array_equal(got.mask, expected.mask) and got.score == pytest.approx(expected.score, abs=1e-6)


def queue_tasks(workspace: Workspace, project_id: int, frame_ids: list[int]) -> list[int]:
    with workspace.db.session() as session:
        tasks = repo.create_tasks(session, project_id, None, [(f, "test") for f in frame_ids])
    return [tasks[f] for f in frame_ids]


def test_project_warm_segments_with_grabcut_has_nothing_to_encode(tmp_path: Path) -> None:
    import curator

    with curator.open(tmp_path / "home", backbone="classic", device="cpu") as home:
        project_id, frame_id, _ = store_scene(home.workspace, "warm")
        queue_tasks(home.workspace, project_id, [frame_id])
        out = home.project_by_id(project_id).warm_segments(backend="grabcut")
    assert out["segmenter"] == "grabcut" and out["frames"] == 1 and out["encoded"] == 0


@pytest.fixture
def warm_api(tmp_path: Path, dinov2_file: Path) -> Iterator[tuple[TestClient, Workspace, int, int]]:
    settings = make_settings(
        tmp_path, segmenter="feature", backbone_checkpoint=str(dinov2_file), segment_warm=True, preannotate=True
    )
    workspace = Workspace(settings)
    project_id, frame_id, _ = store_scene(workspace, "warm")
    with TestClient(create_app(settings, workspace=workspace)) as client:
        yield client, workspace, project_id, frame_id
    workspace.close()


def wait_job(client: TestClient, job_id: int, headers: dict[str, str], timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("succeeded", "failed", "cancelled", "interrupted"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_the_preannotate_job_warms_queued_frames_for_the_first_click(
    warm_api: tuple[TestClient, Workspace, int, int],
) -> None:
    client, workspace, project_id, frame_id = warm_api
    admin = auth(new_key(workspace, "admin"))
    queue_tasks(workspace, project_id, [frame_id])
    r = client.post(f"/projects/{project_id}/preannotate", json={}, headers=admin)
    assert r.status_code in (200, 201, 202), r.text
    job = wait_job(client, r.json()["id"], admin)
    assert job["state"] == "succeeded", job
    warm = job["result"]["warm"]
    assert warm["segmenter"] == "feature" and warm["frames"] == 1 and warm["encoded"] == 1, warm
    files = list((workspace.settings.blob_root / "segment-cache").rglob("*.npz"))
    assert len(files) == 1
    # the first click reads the warmed encodings: no encoder pass in this process's segmenter
    from curator.project import Curator

    segmenter = Curator(workspace.settings, workspace=workspace).segmenter().segmenter
    before = segmenter.encoder_passes
    annotator = auth(new_key(workspace, "annotator", project_id))
    r = client.post(
        f"/frames/{frame_id}/segment", json={"points": [{"x": CENTRE[0], "y": CENTRE[1], "positive": True}]},
        headers=annotator,
    )
    assert r.status_code == 200, r.text
    assert r.json()["mask"]["size"] == [H, W] and segmenter.encoder_passes == before
    # a second warm finds everything cached
    job = wait_job(client, client.post(f"/projects/{project_id}/preannotate", json={}, headers=admin).json()["id"], admin)
    assert job["result"]["warm"]["encoded"] == 0 and job["result"]["warm"]["cached"] == 1
