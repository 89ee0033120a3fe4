"""``sam2``: SAM 2's image predictor with the clicks as point prompts.

The image encoder runs once per image: its features (``SAM2ImagePredictor._features`` with the
image size) are kept in an LRU cache by image key and put back into the predictor for later
clicks, so a click costs one prompt-encoder and mask-decoder pass. When the caller's current mask is
the mask this segmenter last returned for the image, its low-resolution logits go back in as
``mask_input`` (SAM's own refinement loop); another mask is turned into logits first. The first
click without a mask asks SAM 2 for three candidates (a single click is ambiguous) and keeps the one
with the best predicted IoU; later calls ask for one.

Weights are resolved like the ``sam2`` propagator's (:mod:`curator.annotate.sam2_backend`): a local
checkpoint with its Hydra config, or a Hugging Face hub id; ``random_weights`` is for tests.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from curator.annotate.sam2_backend import DEFAULT_CONFIG, SAM2Annotator, _autocast, _fit_feature_sizes
from curator.segment.cache import EncodingStore, weights_id
from curator.segment.types import (
    BoxInput,
    ClickInput,
    LRUCache,
    SegmentResult,
    check_image,
    check_prompt,
    image_key,
    register_segmenter,
)

#: Logit magnitude a given (not SAM-made) mask is turned into for ``mask_input``.
MASK_LOGIT = 8.0


def mask_digest(mask: np.ndarray) -> str:
    """A short hash of a bool mask (to recognise the mask this segmenter returned last)."""
    packed = np.packbits(np.asarray(mask, bool))
    return hashlib.blake2b(str(mask.shape).encode() + packed.tobytes(), digest_size=16).hexdigest()


def _array(tensor: Any) -> np.ndarray:
    """A feature tensor as a float32 numpy array (bf16 has no numpy type)."""
    return np.asarray(tensor.detach().float().cpu().numpy(), np.float32)


def mask_to_logits(mask: np.ndarray, side: int) -> np.ndarray:
    """A full-size bool mask as SAM's low-resolution ``mask_input``: ``(1, side, side)`` logits."""
    small = cv2.resize(mask.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
    return ((2.0 * small - 1.0) * MASK_LOGIT)[None].astype(np.float32)


@register_segmenter("sam2")
@dataclass
class SAM2Segmenter:
    """SAM 2 point/box prompts with a per-image embedding cache (see the module docstring).

    Attributes:
        config: Hydra config name inside the sam2 package.
        checkpoint: SAM 2 checkpoint (``.pt``) matching ``config``.
        hub_id: Hugging Face id (``facebook/sam2.1-hiera-tiny``) used when no checkpoint is given.
        random_weights: Allow random weights (tests only).
        image_size: Override of the model's input size (``++model.image_size``).
        device: ``auto``, ``cpu`` or ``cuda``.
        cache_size: Images whose embeddings are kept (LRU).
        store: Embeddings on disk (:mod:`curator.segment.cache`), read before and written after an
            encoder pass; ``None`` keeps them in memory only.
    """

    name: ClassVar[str] = "sam2"
    config: str = DEFAULT_CONFIG
    checkpoint: str | Path | None = None
    hub_id: str | None = None
    random_weights: bool = False
    image_size: int | None = None
    device: str = "auto"
    cache_size: int = 8
    store: EncodingStore | None = field(default=None, repr=False)
    cache: LRUCache[dict[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # checks the weights now (SAM2WeightsError), builds the model on first use
        self._annotator = SAM2Annotator(
            self.config, self.checkpoint, self.hub_id, self.random_weights, self.image_size, self.device
        )
        self.cache = LRUCache(self.cache_size)
        self._last: LRUCache[tuple[str, np.ndarray]] = LRUCache(self.cache_size)
        self._predictor: Any = None
        self._lock = threading.Lock()
        self.encoder_passes = 0

    @property
    def predictor(self) -> Any:
        """The SAM 2 image predictor, built on first use."""
        if self._predictor is None:
            from sam2.sam2_image_predictor import SAM2ImagePredictor

            model = self._annotator.model
            predictor = SAM2ImagePredictor(model)
            _fit_feature_sizes(predictor, model.image_size)
            self._predictor = predictor
        return self._predictor

    def encoding_tag(self) -> str:
        """Names this segmenter's embeddings on disk: config, weights and input size. Random weights
        differ per model built, so their tag names this model."""
        weights = f"random{id(self._annotator)}" if self.random_weights else weights_id(self.checkpoint or self.hub_id)
        config = Path(self.config).stem
        return f"sam2-{config}-{weights}-{self.image_size or 'default'}"

    def _encodings(self, image: np.ndarray, key: Hashable) -> dict[str, Any]:
        """The image's embedding: from memory, else from :attr:`store`, else one encoder pass (kept in both)."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        predictor = self.predictor
        stored = self.store.get(key) if self.store is not None else None
        if stored is not None and {"image_embed", "high_res_0", "high_res_1", "orig_hw"} <= stored.keys():
            import torch

            def tensor(name: str) -> Any:
                return torch.from_numpy(stored[name]).to(predictor.device)

            features = {"image_embed": tensor("image_embed"), "high_res_feats": [tensor("high_res_0"), tensor("high_res_1")]}
            cached = {"features": features, "orig_hw": [tuple(int(v) for v in stored["orig_hw"])]}
        else:
            with _autocast(str(predictor.device)):
                predictor.set_image(image)
            self.encoder_passes += 1
            cached = {"features": predictor._features, "orig_hw": predictor._orig_hw}
            self._save(key, cached)
        self.cache.put(key, cached)
        return cached

    def _save(self, key: Hashable, cached: dict[str, Any]) -> None:
        """Write an embedding to :attr:`store` (if any) as float32 arrays."""
        if self.store is None:
            return
        feats = cached["features"]
        self.store.put(key, {
            "image_embed": _array(feats["image_embed"]),
            "high_res_0": _array(feats["high_res_feats"][0]),
            "high_res_1": _array(feats["high_res_feats"][1]),
            "orig_hw": np.asarray(cached["orig_hw"][0], np.int64),
        })  # fmt: skip

    def _set_image(self, image: np.ndarray, key: Hashable) -> None:
        """Point the predictor at ``image``'s embedding (see :meth:`_encodings`)."""
        cached = self._encodings(image, key)
        predictor = self.predictor
        predictor.reset_predictor()
        predictor._features = cached["features"]
        predictor._orig_hw = cached["orig_hw"]
        predictor._is_image_set = True

    def warm(self, image: np.ndarray, key: Hashable | None = None) -> bool:
        """Make sure the image's embedding is cached (in memory, and in :attr:`store` when set).

        Returns:
            True if an encoder pass ran, False if it was cached already.
        """
        key = image_key(image) if key is None else key
        with self._lock:
            if key in self.cache:
                cached = self.cache.get(key)
                if cached is not None and self.store is not None and key not in self.store:
                    self._save(key, cached)  # cached here only: put it on disk for other processes
                return False
            before = self.encoder_passes
            self._encodings(check_image(image), key)
            return self.encoder_passes > before

    def segment(
        self,
        image: np.ndarray,
        points: Sequence[ClickInput],
        box: BoxInput | None = None,
        mask: np.ndarray | None = None,
        *,
        key: Hashable | None = None,
    ) -> SegmentResult:
        """The object's mask from clicks, a box and the current mask (see :class:`~curator.segment.Segmenter`)."""
        prompt = check_prompt(image, points, box, mask)
        key = image_key(prompt.image) if key is None else key
        coords = labels = None
        if prompt.clicks:
            coords = np.array([[c.x, c.y] for c in prompt.clicks], np.float32)
            labels = np.array([1 if c.positive else 0 for c in prompt.clicks], np.int32)
        box_arr = None if prompt.box is None else np.asarray(prompt.box, np.float32)
        with self._lock:  # one predictor: its image state must not change under a running call
            self._set_image(prompt.image, key)
            predictor = self.predictor
            mask_input = None
            if prompt.mask is not None and prompt.mask.any():
                last = self._last.get(key)
                digest = mask_digest(prompt.mask)
                side = predictor.model.image_size // 4
                mask_input = last[1] if last is not None and last[0] == digest else mask_to_logits(prompt.mask, side)
            multimask = mask_input is None and len(prompt.clicks) == 1 and box_arr is None
            with _autocast(str(predictor.device)):
                masks, scores, low_res = predictor.predict(
                    point_coords=coords,
                    point_labels=labels,
                    box=box_arr,
                    mask_input=mask_input,
                    multimask_output=multimask,
                )
            best = int(np.argmax(scores))
            out = np.asarray(masks[best] > 0.5, dtype=bool)
            self._last.put(key, (mask_digest(out), np.asarray(low_res[best : best + 1], np.float32)))
        return SegmentResult(out, float(np.clip(scores[best], 0.0, 1.0)), self.name)
