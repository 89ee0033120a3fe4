"""``feature`` and ``flow+feature`` on a few real DAVIS frames with the shared DINOv2 checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curator.annotate import FrameSource, Keyframe, create_propagator
from curator.annotate.feature import AffinityMemory, feature_grid, labels_to_grid, neighbourhood_mask
from curator.eval import region_similarity

SHARED = Path(__file__).parents[1].parent / "shared"
DAVIS = SHARED / "data" / "davis2016"
CHECKPOINT = SHARED / "weights" / "dinov2_vits14.safetensors"


def test_grid_and_neighbourhood() -> None:
    assert feature_grid((480, 854), 336, 14) == (24, 43)
    near = neighbourhood_mask((3, 4), 1)
    assert near.shape == (12, 12)
    assert near[0].reshape(3, 4).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    labels = labels_to_grid([np.ones((28, 28), np.float32)], (2, 2))
    np.testing.assert_allclose(labels, [[0, 1]] * 4)


def test_affinity_memory_copies_labels_of_matching_patches() -> None:
    # Four patches with orthogonal features; the query is the memory permuted within the radius.
    feats = np.eye(4, dtype=np.float32)
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    memory = AffinityMemory(top_k=1, temperature=0.1, radius=1, n_recent=0)
    memory.reset(feats, labels, (2, 2))
    out = memory.predict(feats[[1, 0, 3, 2]])
    np.testing.assert_allclose(out, labels[[1, 0, 3, 2]], atol=1e-6)


@pytest.fixture(scope="module")
def blackswan() -> tuple[list[np.ndarray], list[dict[int, np.ndarray]]]:
    if not DAVIS.is_dir() or not CHECKPOINT.is_file():
        pytest.skip(f"needs the DAVIS sample and DINOv2 weights under {SHARED}")
    from benchmarks.davis import load_davis

    seq = load_davis(DAVIS, sequences=["blackswan"])[0]
    idx = range(0, 10, 2)  # every other frame: 5 frames with real motion
    frames = [seq.frame(i) for i in idx]
    gts = [{1: seq.labels(i) == 1} for i in idx]
    return frames, gts


@pytest.mark.parametrize(
    ("name", "scale", "short_side"),
    [
        # loads the checkpoint itself, as a user's settings do; 336 px is what it needs on this clip
        ("feature", 1.0, 336),
        # shares the session's model; its full-resolution DIS flow is the cost, so half-size frames
        # (0.98 IoU there against 0.98 at full size; 5 s instead of 15 s on one core)
        ("flow+feature", 0.5, 224),
    ],
)
def test_propagates_real_object(
    name: str,
    scale: float,
    short_side: int,
    blackswan: tuple[list[np.ndarray], list[dict[int, np.ndarray]]],
    request: pytest.FixtureRequest,
) -> None:
    import cv2

    frames, gts = blackswan
    if scale != 1.0:
        frames = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]
        size = (frames[0].shape[1], frames[0].shape[0])
        gts = [{k: cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for k, m in g.items()}
               for g in gts]
    if name == "feature":
        prop = create_propagator(name, checkpoint=CHECKPOINT, device="cpu", short_side=short_side)
    else:
        backbone = request.getfixturevalue("dinov2_backbone")
        prop = create_propagator(name, backbone=backbone, device="cpu", short_side=short_side)
    out = list(prop.propagate(FrameSource(frames), [Keyframe(0, gts[0]), Keyframe(4, gts[4])]))
    assert [f.index for f in out] == [0, 1, 2, 3, 4]
    for f in out[1:4]:
        assert region_similarity(f.masks[1], gts[f.index][1]) > 0.7
        assert 0.0 <= f.confidence[1] <= 1.0
