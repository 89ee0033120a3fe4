"""Labels: validation of human masks (COCO RLE, indexed PNG, arrays) and importing mask folders/files."""

from curator.labels.masks import InvalidMaskError, array_masks, check_masks, label_masks, png_masks

__all__ = ["InvalidMaskError", "array_masks", "check_masks", "label_masks", "png_masks"]
