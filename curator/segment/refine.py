"""Image maths shared by the segmenters: working resolution, click seeds, GrabCut, a guided filter,
connected components and confidences.

Everything here works on a downscaled copy of the frame (``max_side`` pixels on the longer side):
OpenCV's GrabCut costs about 3 s on a full 854x480 frame on a loaded 2-core CPU and a quarter of that
at half size, while masks lose little at that scale once upsampled with interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from curator.segment.types import Click


def working_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(height, width)`` of a frame of ``size`` scaled so its longer side is at most ``max_side``."""
    height, width = size
    scale = min(1.0, max_side / max(height, width)) if max_side > 0 else 1.0
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``(height, width)`` (area filter when shrinking)."""
    if image.shape[:2] == tuple(size):
        return image
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def resize_soft(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float map resized (bilinear) to ``(height, width)``."""
    if prob.shape[:2] == tuple(size):
        return prob.astype(np.float32, copy=False)
    return cv2.resize(prob.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def upscale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-resolution mask (bool or soft) back at ``(height, width)``, thresholded at 0.5."""
    if mask.shape == tuple(size):
        return mask > 0.5 if mask.dtype != bool else mask
    return resize_soft(mask.astype(np.float32), size) > 0.5


def scale_clicks(clicks: Sequence[Click], size: tuple[int, int], to: tuple[int, int]) -> list[Click]:
    """Clicks in a frame of ``size`` moved to the same spot of a frame of ``to`` (pixel centres kept)."""
    sy, sx = to[0] / size[0], to[1] / size[1]
    return [
        Click(min((c.x + 0.5) * sx - 0.5, to[1] - 1), min((c.y + 0.5) * sy - 0.5, to[0] - 1), c.positive)
        for c in clicks
    ]


def click_disks(size: tuple[int, int], clicks: Sequence[Click], radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Bool maps of disks of ``radius`` pixels around the positive and the negative clicks."""
    fg = np.zeros(size, np.uint8)
    bg = np.zeros(size, np.uint8)
    for c in clicks:
        centre = (round(max(c.x, 0)), round(max(c.y, 0)))
        cv2.circle(fg if c.positive else bg, centre, max(int(radius), 0), 1, thickness=-1)
    return fg.astype(bool), bg.astype(bool)


def grow_rect(
    rect: tuple[float, float, float, float], margin: float, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` grown by ``margin`` pixels on every side, clipped to the frame (end exclusive)."""
    height, width = size
    x0, y0, x1, y1 = rect
    return (
        max(0, int(np.floor(x0 - margin))),
        max(0, int(np.floor(y0 - margin))),
        min(width, int(np.ceil(x1 + margin)) + 1),
        min(height, int(np.ceil(y1 + margin)) + 1),
    )


def bounding_rect(mask: np.ndarray | None, clicks: Sequence[Click]) -> tuple[float, float, float, float] | None:
    """The box ``(x0, y0, x1, y1)`` around a mask's pixels and the given clicks (None if both are empty)."""
    xs: list[float] = [c.x for c in clicks]
    ys: list[float] = [c.y for c in clicks]
    if mask is not None and mask.any():
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        xs += [float(cols[0]), float(cols[-1])]
        ys += [float(rows[0]), float(rows[-1])]
    if not xs:
        return None
    return min(xs), min(ys), max(xs), max(ys)


def run_grabcut(image_rgb: np.ndarray, labels: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV GrabCut from an initial label map (``cv2.GC_*`` codes), colour models learned from it.

    Returns:
        The foreground mask (``GC_FGD`` or ``GC_PR_FGD`` after the cut), and the background and
        foreground colour models (OpenCV's 65-value GMM arrays).
    """
    work = labels.astype(np.uint8).copy()
    fg_init = (work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    if fg_init.all() or not fg_init.any():  # GrabCut needs samples of both sides to learn its colour models
        return fg_init, bgd, fgd
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    cv2.grabCut(bgr, work, (0, 0, 0, 0), bgd, fgd, max(int(iterations), 1), cv2.GC_INIT_WITH_MASK)
    return (work == cv2.GC_FGD) | (work == cv2.GC_PR_FGD), bgd, fgd


def gmm_log_likelihood(model: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Log-likelihood of RGB-ordered ``(n, 3)`` float pixels under one of OpenCV GrabCut's colour models.

    OpenCV stores a model as 5 weights, 5 x 3 means and 5 x 3 x 3 covariances, in BGR order.
    """
    k = 5
    flat = np.asarray(model, np.float64).ravel()
    weights, means, covs = flat[:k], flat[k : 4 * k].reshape(k, 3), flat[4 * k :].reshape(k, 3, 3)
    bgr = pixels[:, ::-1].astype(np.float64)
    total = np.full(len(bgr), -np.inf)
    for w, mean, cov in zip(weights, means, covs, strict=True):
        if w <= 0:
            continue
        cov = cov + np.eye(3) * 1e-2
        diff = bgr - mean
        inv = np.linalg.inv(cov)
        maha = np.einsum("ni,ij,nj->n", diff, inv, diff)
        log_det = float(np.log(max(np.linalg.det(cov), 1e-12)))
        total = np.logaddexp(total, np.log(w) - 0.5 * (maha + log_det + 3 * np.log(2 * np.pi)))
    return total


def colour_posterior(image_rgb: np.ndarray, bgd: np.ndarray, fgd: np.ndarray) -> np.ndarray | None:
    """Per-pixel foreground probability ``(H, W)`` under GrabCut's two colour models (None if untrained)."""
    if not np.asarray(fgd).any() or not np.asarray(bgd).any():
        return None
    pixels = image_rgb.reshape(-1, 3)
    log_f = gmm_log_likelihood(fgd, pixels)
    log_b = gmm_log_likelihood(bgd, pixels)
    prob = 1.0 / (1.0 + np.exp(np.clip(log_b - log_f, -50, 50)))
    return prob.reshape(image_rgb.shape[:2]).astype(np.float32)


def guided_filter(guide_rgb: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a colour guide: ``src`` smoothed so its edges follow the image's.

    Args:
        guide_rgb: ``(H, W, 3)`` uint8 image.
        src: ``(H, W)`` float map (a soft mask).
        radius: Window radius in pixels.
        eps: Regulariser (on guide values in [0, 1]); larger smooths more across weak edges.
    """
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, ksize, borderType=cv2.BORDER_REFLECT)

    guide = guide_rgb.astype(np.float32) / 255.0
    p = src.astype(np.float32)
    mean_i = box(guide)
    mean_p = box(p)
    cov_ip = box(guide * p[..., None]) - mean_i * mean_p[..., None]
    # 3x3 covariance of the guide in each window
    var = np.empty((*p.shape, 3, 3), np.float32)
    for a in range(3):
        for b in range(a, 3):
            v = box(guide[..., a] * guide[..., b]) - mean_i[..., a] * mean_i[..., b]
            var[..., a, b] = var[..., b, a] = v
    var += np.eye(3, dtype=np.float32) * eps
    coef = np.linalg.solve(var, cov_ip[..., None])[..., 0]
    offset = mean_p - (coef * mean_i).sum(axis=-1)
    return (box(coef) * guide).sum(axis=-1) + box(offset)  # type: ignore[no-any-return]


def keep_components(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The connected components (8-connected) of ``mask`` that touch a ``seeds`` pixel."""
    if not mask.any() or not seeds.any():
        return mask
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    keep = np.unique(labels[seeds & mask])
    keep = keep[keep > 0]
    return np.isin(labels, keep)


def crispness(prob: np.ndarray, region: np.ndarray | None = None) -> float:
    """Mean ``|2p - 1|`` over ``region`` (default the pixels with ``p > 0.1``); 1.0 over an empty region."""
    region = prob > 0.1 if region is None else region
    if not region.any():
        return 1.0
    return float(np.abs(2.0 * prob[region] - 1.0).mean())


def colour_logit(image_rgb: np.ndarray, prob: np.ndarray, bins: int = 16, confident: float = 0.2) -> np.ndarray | None:
    """Per-pixel log-ratio of foreground to background colour likelihood, from 3-D colour histograms
    of the pixels ``prob`` is confident about (above ``1 - confident`` or below ``confident``).

    Returns:
        ``(H, W)`` float32 logits, or None when one side has no confident pixels.
    """
    step = 256 // bins
    quantised = (image_rgb // step).astype(np.int32)
    index = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    fg = prob > 1.0 - confident
    bg = prob < confident
    if fg.sum() < 16 or bg.sum() < 16:
        return None
    size = bins**3
    hist_fg = np.bincount(index[fg], minlength=size).astype(np.float32) + 1.0
    hist_bg = np.bincount(index[bg], minlength=size).astype(np.float32) + 1.0
    ratio = np.log(hist_fg / hist_fg.sum()) - np.log(hist_bg / hist_bg.sum())
    return ratio[index].astype(np.float32)  # type: ignore[no-any-return]
