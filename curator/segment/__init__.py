"""Click-to-segment: one object's mask on one image from clicks, a box and the current mask.

Segmenters:

* ``grabcut``: OpenCV GrabCut with the clicks as hard seeds (no weights; the baseline);
* ``feature``: DINOv2 patch affinity to the clicks, refined to the image's edges (the CPU default;
  the encoder runs once per image, later clicks reuse its cached features);
* ``sam2``: SAM 2's image predictor with the clicks as point prompts (the image embedding is cached
  per image, so a click costs one decoder pass).

``create_segmenter(name, **settings)`` builds one, ``list_segmenters()`` lists the names and
``choose_segmenter("auto")`` picks the best one whose weights resolve. Torch, timm and SAM 2 are
imported only when a segmenter that needs them runs.
"""

from curator.segment import feature as _feature  # noqa: F401  (registers feature)
from curator.segment import grabcut as _grabcut  # noqa: F401  (registers grabcut)
from curator.segment import sam2_backend as _sam2  # noqa: F401  (registers sam2; sam2 itself is lazy)
from curator.segment.choose import SegmenterChoice, choose_segmenter, shared_segmenter
from curator.segment.types import (
    SEGMENTERS,
    Click,
    InvalidPromptError,
    Segmenter,
    SegmentResult,
    create_segmenter,
    list_segmenters,
    register_segmenter,
)

__all__ = [
    "SEGMENTERS",
    "Click",
    "InvalidPromptError",
    "SegmentResult",
    "Segmenter",
    "SegmenterChoice",
    "choose_segmenter",
    "create_segmenter",
    "list_segmenters",
    "register_segmenter",
    "shared_segmenter",
]
