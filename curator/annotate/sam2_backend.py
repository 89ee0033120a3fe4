"""``sam2``: SAM 2 video propagation with bounded memory, plus SAM 2 pre-annotation of a keyframe.

The ``sam2`` package is imported lazily (it initialises Hydra on import).

Memory. SAM 2's stock ``init_state`` reads and preprocesses every frame of the video up front and its
``propagate_in_video`` keeps the outputs of every tracked frame; users report 40-80 GB for a few
minutes of video. Here the inference state is built by hand around a :class:`WindowedFrames` list
that loads and preprocesses frames on demand, ``window`` at a time (the window the tracker is in;
the rest of the video is never read), and after each frame the outputs that SAM 2 can no longer use
are dropped: the memory attention only reads the conditioning (keyframe) outputs, the last
``num_maskmem - 1`` frames and object pointers of the last ``max_obj_ptrs_in_encoder - 1`` frames,
so older non-conditioning outputs are dead weight. Masks are therefore identical to a one-pass run
while memory stays flat as the video grows. Frames and state live on the CPU (``offload``) and only
the frame being processed goes to the GPU.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from curator.annotate.engine import BidirectionalPropagator
from curator.annotate.frames import FrameSource
from curator.annotate.types import register_propagator
from curator.embed.dinov2 import resolve_device

DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SAM2_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
SAM2_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class SAM2WeightsError(RuntimeError):
    """No SAM 2 checkpoint was given and none can be had from the hub."""


def _overrides(image_size: int | None, extra: Sequence[str] = ()) -> list[str]:
    return ([f"++model.image_size={int(image_size)}"] if image_size else []) + list(extra)


def _check_weights(checkpoint: str | Path | None, hub_id: str | None, random_weights: bool) -> str | None:
    """Return the checkpoint path to load, or None for random weights / hub; raise when there is none."""
    if checkpoint:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise SAM2WeightsError(f"SAM 2 checkpoint {path} does not exist")
        return str(path)
    if hub_id or random_weights:
        return None
    raise SAM2WeightsError(
        "SAM 2 needs weights: pass --sam2-checkpoint PATH (a sam2.1_hiera_*.pt file) with the matching "
        "--sam2-config, or --sam2-hub facebook/sam2.1-hiera-tiny where huggingface.co is reachable"
    )


def _autocast(device: str) -> Any:
    """bf16 autocast on CUDA (SAM 2's recommended mode); nothing on the CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def preprocess(frame: np.ndarray, image_size: int) -> Any:
    """SAM 2 input for an RGB uint8 frame: resized square, ImageNet-normalised ``(3, S, S)`` float32."""
    import torch

    resized = cv2.resize(frame, (image_size, image_size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    normalised = (resized / 255.0 - SAM2_MEAN) / SAM2_STD
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))


class WindowedFrames:
    """A list-like of SAM 2 input tensors that loads ``window`` frames at a time and holds no more.

    SAM 2's predictor only indexes ``inference_state["images"][i]``, so this object stands in for the
    fully loaded tensor that ``init_state`` would build.

    Args:
        frames: The video.
        image_size: SAM 2's square input size.
        window: Frames loaded (and kept) at once.
    """

    def __init__(self, frames: FrameSource, image_size: int, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 frame, got {window}")
        self.frames, self.image_size, self.window = frames, image_size, window
        self._held: dict[int, Any] = {}
        self.max_held = 0
        self.loads = 0

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Any:
        if index not in self._held:
            block = index // self.window
            lo, hi = block * self.window, min((block + 1) * self.window, len(self.frames))
            self._held = {i: preprocess(self.frames[i], self.image_size) for i in range(lo, hi)}
            self.loads += 1
            self.max_held = max(self.max_held, len(self._held))
        return self._held[index]


@dataclass
class PropagationStats:
    """What the last SAM 2 pass held at most (to check that memory is bounded)."""

    max_frames_held: int = 0
    max_outputs_held: int = 0
    window_loads: int = 0


@register_propagator("sam2")
@dataclass
class SAM2Propagator(BidirectionalPropagator):
    """SAM 2 video propagation from keyframe masks, windowed and offloaded (see the module docstring).

    Each direction from a keyframe is one SAM 2 tracking pass conditioned on that keyframe's masks
    (``add_new_mask`` then ``propagate_in_video``); the base class blends the two directions.

    Attributes:
        config: Hydra config name inside the sam2 package (``configs/sam2.1/sam2.1_hiera_t.yaml``).
        checkpoint: SAM 2 checkpoint (``.pt``) matching ``config``.
        hub_id: Hugging Face id (``facebook/sam2.1-hiera-tiny``) used when no checkpoint is given.
        random_weights: Allow running with random weights (tests only).
        image_size: Override of the model's input size (``++model.image_size``); ``None`` keeps 1024.
        device: ``auto``, ``cpu`` or ``cuda``.
        window: Frames loaded and preprocessed at a time.
        prune: Drop outputs the memory attention can no longer read (keeps memory flat).
        hydra_overrides: Further Hydra overrides of the model config (``++model.num_maskmem=3``).
    """

    name: ClassVar[str] = "sam2"
    config: str = DEFAULT_CONFIG
    checkpoint: str | Path | None = None
    hub_id: str | None = None
    random_weights: bool = False
    image_size: int | None = None
    device: str = "auto"
    window: int = 16
    prune: bool = True
    hydra_overrides: tuple[str, ...] = ()
    stats: PropagationStats = field(default_factory=PropagationStats, init=False)

    def __post_init__(self) -> None:
        self._ckpt = _check_weights(self.checkpoint, self.hub_id, self.random_weights)
        self._predictor: Any = None

    @property
    def predictor(self) -> Any:
        """The SAM 2 video predictor, built on first use."""
        if self._predictor is None:
            device = resolve_device(self.device)
            from sam2.build_sam import build_sam2_video_predictor, build_sam2_video_predictor_hf

            extra = _overrides(self.image_size, self.hydra_overrides)
            if self._ckpt is None and self.hub_id:
                self._predictor = build_sam2_video_predictor_hf(
                    self.hub_id, device=device, hydra_overrides_extra=extra
                )
            else:
                self._predictor = build_sam2_video_predictor(
                    self.config, ckpt_path=self._ckpt, device=device, hydra_overrides_extra=extra
                )
        return self._predictor

    def _state(self, frames: FrameSource) -> dict[str, Any]:
        """An inference state like ``init_state``'s, over windowed frames, with state on the CPU."""
        import torch

        predictor = self.predictor
        height, width = frames.size
        images = WindowedFrames(frames, predictor.image_size, self.window if self.prune else len(frames))
        offload = str(predictor.device) != "cpu"
        return {
            "images": images,
            "num_frames": len(frames),
            "offload_video_to_cpu": True,
            "offload_state_to_cpu": offload,
            "video_height": height,
            "video_width": width,
            "device": predictor.device,
            "storage_device": torch.device("cpu") if offload else predictor.device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }

    def _keep(self) -> int:
        predictor = self.predictor
        stride = max(int(getattr(predictor, "memory_temporal_stride_for_eval", 1)), 1)
        return max(predictor.num_maskmem * stride, predictor.max_obj_ptrs_in_encoder) + 1

    def _prune(self, state: dict[str, Any], current: int) -> int:
        keep = self._keep()
        held = 0
        for outputs in state["output_dict_per_obj"].values():
            non_cond = outputs["non_cond_frame_outputs"]
            if self.prune:
                for t in [t for t in non_cond if abs(t - current) > keep]:
                    del non_cond[t]
            held = max(held, len(non_cond))
        if self.prune:
            for tracked in state["frames_tracked_per_obj"].values():
                for t in [t for t in tracked if abs(t - current) > keep]:
                    del tracked[t]
        return held

    def track(
        self, frames: FrameSource, start: int, init: Mapping[int, np.ndarray], order: Sequence[int]
    ) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """One SAM 2 tracking pass from keyframe ``start`` along ``order`` (see the base class)."""
        import torch

        if not order:
            return
        predictor = self.predictor
        state = self._state(frames)
        reverse = order[0] < start
        objects = list(init)
        with _autocast(str(predictor.device)):
            for obj in objects:
                predictor.add_new_mask(state, start, obj, torch.from_numpy(np.asarray(init[obj]) > 0.5))
        passes = predictor.propagate_in_video(
            state, start_frame_idx=start, max_frame_num_to_track=len(order), reverse=reverse
        )
        self.stats = PropagationStats()
        wanted = set(order)
        while True:
            with _autocast(str(predictor.device)):
                step = next(passes, None)
            if step is None:
                break
            t, obj_ids, logits = step
            held = self._prune(state, t)
            self.stats.max_outputs_held = max(self.stats.max_outputs_held, held)
            if t not in wanted:
                continue
            probs = torch.sigmoid(logits.float()).cpu().numpy()[:, 0]
            yield t, {int(obj): probs[i].astype(np.float32) for i, obj in enumerate(obj_ids)}
        images = state["images"]
        self.stats.max_frames_held = images.max_held
        self.stats.window_loads = images.loads


@dataclass
class SAM2Annotator:
    """Pre-annotation of a single keyframe with SAM 2: automatic masks, or masks from points and boxes.

    Attributes:
        config: Hydra config name inside the sam2 package.
        checkpoint: SAM 2 checkpoint (``.pt``).
        hub_id: Hugging Face id used when no checkpoint is given.
        random_weights: Allow random weights (tests only).
        image_size: Override of the model's input size.
        device: ``auto``, ``cpu`` or ``cuda``.
    """

    config: str = DEFAULT_CONFIG
    checkpoint: str | Path | None = None
    hub_id: str | None = None
    random_weights: bool = False
    image_size: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        self._ckpt = _check_weights(self.checkpoint, self.hub_id, self.random_weights)
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The SAM 2 image model, built on first use."""
        if self._model is None:
            from sam2.build_sam import build_sam2, build_sam2_hf

            device = resolve_device(self.device)
            extra = _overrides(self.image_size)
            if self._ckpt is None and self.hub_id:
                self._model = build_sam2_hf(self.hub_id, device=device, hydra_overrides_extra=extra)
            else:
                self._model = build_sam2(
                    self.config, ckpt_path=self._ckpt, device=device, hydra_overrides_extra=extra
                )
        return self._model

    def automatic(self, image: np.ndarray, **generator_kwargs: Any) -> list[dict[str, Any]]:
        """Masks for everything in ``image`` with no human input (SAM 2's automatic mask generator).

        Args:
            image: ``(H, W, 3)`` RGB uint8.
            **generator_kwargs: ``SAM2AutomaticMaskGenerator`` settings (``points_per_side``,
                ``pred_iou_thresh``, ``stability_score_thresh``, ...).

        Returns:
            One dict per mask, largest first: ``segmentation`` ``(H, W)`` bool, ``area``, ``bbox``
            (x, y, w, h), ``predicted_iou``, ``stability_score``.
        """
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        image = _check_image(image)
        generator = SAM2AutomaticMaskGenerator(self.model, **generator_kwargs)
        _fit_feature_sizes(generator.predictor, self.model.image_size)
        with _autocast(str(self.model.device)):
            found = generator.generate(image)
        return sorted(found, key=lambda m: -int(m["area"]))

    def from_prompts(
        self,
        image: np.ndarray,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float]:
        """One mask from click points (label 1 foreground, 0 background) and/or a box ``x0, y0, x1, y1``.

        Returns:
            The best of SAM 2's candidate masks as ``(H, W)`` bool, and its predicted IoU.

        Raises:
            ValueError: With no prompt, points without labels, or prompts outside the image.
        """
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        image = _check_image(image)
        height, width = image.shape[:2]
        if points is None and box is None:
            raise ValueError("give points (with labels) or a box")
        coords = None
        if points is not None:
            coords = np.asarray(points, dtype=np.float32).reshape(-1, 2)
            if labels is None or len(np.asarray(labels).ravel()) != len(coords):
                raise ValueError(f"need one label per point: {len(coords)} points")
            if (coords < 0).any() or (coords[:, 0] >= width).any() or (coords[:, 1] >= height).any():
                raise ValueError(f"points must lie inside the {width}x{height} image, got {coords.tolist()}")
        box_arr = None if box is None else np.asarray(box, dtype=np.float32).reshape(4)
        predictor = SAM2ImagePredictor(self.model)
        _fit_feature_sizes(predictor, self.model.image_size)
        with _autocast(str(self.model.device)):
            predictor.set_image(image)
            masks, scores, _ = predictor.predict(
                point_coords=coords,
                point_labels=None if labels is None else np.asarray(labels).ravel(),
                box=box_arr,
                multimask_output=True,
            )
        best = int(np.argmax(scores))
        return np.asarray(masks[best] > 0, dtype=bool), float(scores[best])


def _fit_feature_sizes(predictor: Any, image_size: int) -> None:
    """SAM2ImagePredictor hard-codes the backbone feature sizes of a 1024 px model; fit them to ours."""
    predictor._bb_feat_sizes = [(image_size // 4,) * 2, (image_size // 8,) * 2, (image_size // 16,) * 2]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image
