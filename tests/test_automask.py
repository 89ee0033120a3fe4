"""SAM 2's automatic masks as the pre-annotation of frames nothing else pre-annotates
(``curator.labels.automask``): the choice of masks, the real generator with random weights, and
the ``model`` masks a task then shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curator.labels.automask import configured_automasker, sam2_automasker, select_masks
from curator.labels.preannotate import preannotate_tasks
from curator.store import repo
from tests.test_segment import scene, store_scene


def square(top: int, left: int, side: int, shape: tuple[int, int] = (100, 100)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_select_masks_keeps_confident_large_distinct_masks() -> None:
    found = [
        {"segmentation": square(0, 0, 40), "predicted_iou": 0.9, "stability_score": 0.95},
        {"segmentation": square(5, 5, 30), "predicted_iou": 0.95, "stability_score": 0.5},  # inside the first
        {"segmentation": square(60, 60, 30), "predicted_iou": 0.8, "stability_score": 0.9},
        {"segmentation": square(95, 0, 2), "predicted_iou": 0.99, "stability_score": 1.0},  # too small
        {"segmentation": np.zeros((100, 100), bool), "predicted_iou": 1.0},
        {"segmentation": square(0, 60, 20), "predicted_iou": 1.3, "stability_score": 0.3},
    ]
    kept = select_masks(found, max_objects=8, min_area=0.002)
    # ranked by predicted IoU x stability: the first square (0.855), then the far one (0.72), then
    # the top-right one (0.39, confidence clipped to 1); the nested one is mostly inside the first
    assert [int(m.sum()) for m, _ in kept] == [1600, 900, 400]
    assert [c for _, c in kept] == [0.9, 0.8, 1.0]
    assert len(select_masks(found, max_objects=1)) == 1


@pytest.fixture(scope="module")
def masker() -> object:
    pytest.importorskip("sam2")
    import torch

    from curator.annotate.sam2_backend import SAM2Annotator

    torch.manual_seed(0)  # random weights: no quality filter, so the grid's prompts keep masks
    annotator = SAM2Annotator(random_weights=True, image_size=128, device="cpu")
    return sam2_automasker(
        annotator, min_area=0.0, points_per_side=2, points_per_batch=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )


def test_the_generator_gives_masks_of_the_frame(masker: object) -> None:
    image, _ = scene()
    found = masker(image)  # type: ignore[operator]
    assert found and len(found) <= 8
    for mask, confidence in found:
        assert mask.shape == image.shape[:2] and mask.dtype == bool and mask.any() and 0.0 <= confidence <= 1.0


def test_tasks_without_keyframes_get_model_masks(tmp_path: Path, masker: object) -> None:
    import curator

    with curator.open(tmp_path / "home", backbone="classic", device="cpu") as home:
        workspace = home.workspace
        project_id, frame_id, _ = store_scene(workspace, "auto")
        with workspace.db.session() as session:
            task_id = repo.create_tasks(session, project_id, None, [(frame_id, "test")])[frame_id]

        def no_propagator() -> tuple[object, str]:
            raise AssertionError("no video has human masks: nothing to propagate")

        # without SAM 2 weights configured there is nothing to start from, and the result says why
        plain = preannotate_tasks(workspace, project_id, None, no_propagator, automask=lambda: None)
        assert plain["pre_annotated"] == 0 and plain["reason"] == "no human masks yet" and plain["automasked"] == 0
        done = preannotate_tasks(workspace, project_id, None, no_propagator, automask=lambda: masker)  # type: ignore[arg-type,return-value]
        assert done["automasked"] == 1 and done["pre_annotated"] == 1 and done["filled"] == 1, done
        task = home.project_by_id(project_id).task(task_id)
        sources = {m["source"] for m in task["pre_annotation"]}
        assert sources == {"model"} and all(0.0 <= m["confidence"] <= 1.0 for m in task["pre_annotation"])
        assert [m["object_id"] for m in task["pre_annotation"]] == list(range(1, len(task["pre_annotation"]) + 1))
        # a second run finds the frame pre-annotated and leaves its masks alone
        again = preannotate_tasks(workspace, project_id, None, no_propagator, automask=lambda: masker)  # type: ignore[arg-type,return-value]
        assert again["already"] == 1 and again["automasked"] == 0


def test_automask_needs_configured_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from curator.annotate.sam2_backend import SAM2WeightsError

    for var in ("CURATOR_SAM2_CHECKPOINT", "CURATOR_SAM2_HUB", "CURATOR_SAM2_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    assert configured_automasker("cpu") is None
    monkeypatch.setenv("CURATOR_SAM2_CHECKPOINT", str(tmp_path / "missing.pt"))
    with pytest.raises(SAM2WeightsError, match="does not exist"):
        configured_automasker("cpu")
