// Whole-mask operations of the editor's tools: filling a polygon, filling holes, a mask's extent.
//
// Masks are row-major Uint8Array(height * width) of 0/1, as everywhere in the page.

/**
 * Set to `value` every pixel whose centre (x + 0.5, y + 0.5) lies inside the polygon (even-odd rule):
 * on each pixel row, the centres from an even-indexed edge crossing (inclusive) to the next (exclusive).
 * @param {Uint8Array} mask changed in place
 * @param {number} width
 * @param {number} height
 * @param {number[][]} vertices [[x, y], ...] in image pixels (3 or more)
 * @param {number} value 1 to add, 0 to cut
 * @returns {number} how many pixels changed
 */
export function fillPolygon(mask, width, height, vertices, value) {
  if (vertices.length < 3) return 0;
  const ys = vertices.map((v) => v[1]);
  const top = Math.max(0, Math.floor(Math.min(...ys) - 0.5));
  const bottom = Math.min(height - 1, Math.ceil(Math.max(...ys)));
  let changed = 0;
  for (let y = top; y <= bottom; y += 1) {
    const xs = crossings(vertices, y + 0.5);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const [a, b] = [xs[k], xs[k + 1]];
      const to = Math.min(width - 1, Math.ceil(b));
      for (let x = Math.max(0, Math.floor(a) - 1); x <= to; x += 1) {
        const i = y * width + x;
        if (x + 0.5 >= a && x + 0.5 < b && mask[i] !== value) {
          mask[i] = value;
          changed += 1;
        }
      }
    }
  }
  return changed;
}

/** The sorted x of the polygon's edges crossing the horizontal line at `yc` (half-open in y). */
function crossings(vertices, yc) {
  const xs = [];
  const n = vertices.length;
  for (let i = 0; i < n; i += 1) {
    const [x1, y1] = vertices[i];
    const [x2, y2] = vertices[(i + 1) % n];
    if (y1 <= yc !== y2 <= yc) xs.push(x1 + ((yc - y1) * (x2 - x1)) / (y2 - y1));
  }
  return xs.sort((a, b) => a - b);
}

/**
 * The mask with its holes filled: background pixels not 4-connected to the image border become
 * foreground, except those in `keep` (pixels another object owns), which stay as they are.
 * @param {Uint8Array} mask
 * @param {number} width
 * @param {number} height
 * @param {Uint8Array | null} keep pixels not to fill (1), or null
 * @returns {{mask: Uint8Array, filled: number}}
 */
export function fillHoles(mask, width, height, keep = null) {
  const outside = new Uint8Array(mask.length); // background reached from the border
  const stack = new Int32Array(mask.length);
  let top = 0;
  const seed = (i) => {
    if (!mask[i] && !outside[i]) {
      outside[i] = 1;
      stack[top++] = i;
    }
  };
  for (let x = 0; x < width; x += 1) {
    seed(x);
    seed((height - 1) * width + x);
  }
  for (let y = 0; y < height; y += 1) {
    seed(y * width);
    seed(y * width + width - 1);
  }
  while (top > 0) {
    const i = stack[--top];
    const x = i % width;
    if (x > 0) seed(i - 1);
    if (x < width - 1) seed(i + 1);
    if (i >= width) seed(i - width);
    if (i < mask.length - width) seed(i + width);
  }
  const out = mask.slice();
  let filled = 0;
  for (let i = 0; i < out.length; i += 1) {
    if (!out[i] && !outside[i] && !(keep && keep[i])) {
      out[i] = 1;
      filled += 1;
    }
  }
  return { mask: out, filled };
}

/** A mask's area (pixels set) and extent [x0, y0, x1, y1] (inclusive-exclusive; null when empty), in one pass. */
export function measureMask(mask, width, height) {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  let area = 0;
  for (let y = 0; y < height; y += 1) {
    const row = y * width;
    let first = -1;
    let last = -1;
    for (let x = 0; x < width; x += 1) {
      if (!mask[row + x]) continue;
      if (first < 0) first = x;
      last = x;
      area += 1;
    }
    if (first < 0) continue;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
    if (y < y0) y0 = y;
    y1 = y;
  }
  return { area, extent: x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1] };
}
