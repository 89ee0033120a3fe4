// COCO run-length encoding, as the server speaks it.
//
// Masks live in the page as Uint8Array(height * width) in row-major order (index y * width + x),
// values 0 or 1. COCO RLE runs are column-major (Fortran order: index x * height + y) and start
// with a run of zeros. The server answers with compressed counts (a string); the page sends
// uncompressed counts (a list of ints), which the server validates and stores in canonical form.

/** Decode a compressed COCO counts string into run lengths (pycocotools' rleFrString). */
export function decodeCounts(counts) {
  const out = [];
  let p = 0;
  const n = counts.length;
  while (p < n) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= n || k > 12) throw new Error("RLE counts end inside a number");
      const c = counts.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`character ${counts[p]} is not in the RLE alphabet`);
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (out.length > 2) x += out[out.length - 2];
    out.push(x);
  }
  return out;
}

/** A COCO RLE ({size: [h, w], counts: string | number[]}) as a row-major 0/1 Uint8Array. */
export function rleToMask(rle, height, width) {
  const [h, w] = rle.size;
  if (h !== height || w !== width) throw new Error(`mask size ${h}x${w} is not the frame's ${height}x${width}`);
  const runs = typeof rle.counts === "string" ? decodeCounts(rle.counts) : rle.counts;
  const mask = new Uint8Array(h * w);
  let p = 0; // column-major position
  for (let i = 0; i < runs.length; i += 1) {
    const run = runs[i];
    if (i % 2 === 1) {
      const end = Math.min(p + run, h * w);
      for (let q = p; q < end; q += 1) {
        const x = (q / h) | 0;
        mask[(q - x * h) * w + x] = 1;
      }
    }
    p += run;
  }
  return mask;
}

/**
 * A row-major 0/1 mask as COCO RLE with uncompressed counts (column-major, zeros first). With the
 * mask's `extent` [x0, y0, x1, y1] (nothing set outside it), only that rectangle is read.
 */
export function maskToRle(mask, height, width, extent = null) {
  const [x0, y0, x1, y1] = extent || [0, 0, width, height];
  const counts = [];
  let value = 0;
  let run = 0;
  const zeros = (n) => {
    if (n <= 0) return;
    if (value === 0) {
      run += n;
    } else {
      counts.push(run);
      value = 0;
      run = n;
    }
  };
  zeros(x0 * height);
  for (let x = x0; x < x1; x += 1) {
    zeros(y0);
    for (let y = y0; y < y1; y += 1) {
      const v = mask[y * width + x] ? 1 : 0;
      if (v === value) {
        run += 1;
      } else {
        counts.push(run);
        value = v;
        run = 1;
      }
    }
    zeros(height - y1);
  }
  zeros((width - x1) * height);
  counts.push(run);
  return { size: [height, width], counts };
}

/** Foreground pixels of a mask. */
export function area(mask) {
  let n = 0;
  for (let i = 0; i < mask.length; i += 1) n += mask[i];
  return n;
}
