"""Labels: validation of human masks (COCO RLE, indexed PNG, arrays) and importing mask folders/files.

:mod:`curator.labels.propagation` spreads a video's human masks to its other frames (imported on its
own: it needs the database models).
"""

from curator.labels.masks import InvalidMaskError, array_masks, check_masks, label_masks, png_masks

__all__ = ["InvalidMaskError", "array_masks", "check_masks", "label_masks", "png_masks"]
