"""Pre-annotation and mask propagation.

Propagators turn keyframe masks into masks on every frame, streamed frame by frame:

* ``flow``: OpenCV DIS optical flow, chained frame to frame (CPU, no weights);
* ``feature``: DINOv2 patch-affinity label propagation (CPU is enough);
* ``flow+feature``: flow corrected by feature affinity, the default CPU propagator
  (:data:`DEFAULT_CPU_PROPAGATOR`, chosen from the DAVIS keyframe benchmark in the README);
* ``sam2``: SAM 2 video propagation, windowed so memory stays flat on long videos.

``create_propagator(name, **settings)`` builds one; ``list_propagators()`` lists the names. SAM 2 and
the backbone are imported only when a propagator that needs them runs.

Modules: :mod:`~curator.annotate.types` (keyframes, propagated frames, the protocol and registry),
:mod:`~curator.annotate.frames` (:class:`FrameSource`), :mod:`~curator.annotate.blend` (soft-mask
maths), :mod:`~curator.annotate.engine` (the bidirectional, shot-aware engine the propagators build
on) and :mod:`~curator.annotate.masks` (RLE and PNG masks).
"""

from curator.annotate import combined as _combined  # noqa: F401  (registers flow+feature)
from curator.annotate import feature as _feature  # noqa: F401  (registers feature)
from curator.annotate import flow as _flow  # noqa: F401  (registers flow)
from curator.annotate import sam2_backend as _sam2  # noqa: F401  (registers sam2; sam2 itself is lazy)
from curator.annotate.engine import BidirectionalPropagator
from curator.annotate.frames import FrameSource
from curator.annotate.masks import (
    decode_rle,
    encode_rle,
    labels_to_masks,
    masks_to_labels,
    read_indexed_png,
    write_indexed_png,
)
from curator.annotate.types import (
    PROPAGATORS,
    Keyframe,
    PropagatedFrame,
    PropagationCancelled,
    Propagator,
    create_propagator,
    list_propagators,
    register_propagator,
)

#: The propagator to use on a CPU-only machine (best J&F per second on the DAVIS keyframe benchmark).
DEFAULT_CPU_PROPAGATOR = "flow+feature"

__all__ = [
    "DEFAULT_CPU_PROPAGATOR",
    "PROPAGATORS",
    "BidirectionalPropagator",
    "FrameSource",
    "Keyframe",
    "PropagatedFrame",
    "PropagationCancelled",
    "Propagator",
    "create_propagator",
    "decode_rle",
    "encode_rle",
    "labels_to_masks",
    "list_propagators",
    "masks_to_labels",
    "read_indexed_png",
    "register_propagator",
    "write_indexed_png",
]
