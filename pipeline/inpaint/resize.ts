/**
 * Resizing for the inpainting runner: pure functions over typed arrays, deterministic to the bit, so a test can
 * predict the runner's pixels and a corpus hash does not depend on a native library's version.
 */

/**
 * Per-output-index taps of a separable filter. Enlarging: linear interpolation, half-pixel centred, edges clamped.
 * Shrinking: area averaging (each output pixel is the mean of the source pixels it covers, partial pixels weighted by
 * the covered fraction, as OpenCV's INTER_AREA), so a 1024 px photo going to 256 px is averaged, not aliased; it
 * needs about half the taps of a widened triangle filter, which matters as this runs once per image.
 * Weights are normalised: a constant image stays exactly constant.
 */
interface Taps { start: Int32Array; count: Int32Array; weights: Float32Array; maxTaps: number }
const tapCache = new Map<string, Taps>();

function taps(inSize: number, outSize: number): Taps {
  const key = `${inSize}:${outSize}`;
  let t = tapCache.get(key);
  if (!t) {
    t = computeTaps(inSize, outSize);
    if (tapCache.size > 256) tapCache.clear();
    tapCache.set(key, t);
  }
  return t;
}

function computeTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  if (scale > 1) return areaTaps(inSize, outSize);
  const support = Math.max(1, scale);
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale - 0.5;
    const lo = Math.max(0, Math.floor(centre - support) + 1);
    const hi = Math.min(inSize - 1, Math.ceil(centre + support) - 1);
    let sum = 0;
    let n = 0;
    for (let i = lo; i <= hi && n < maxTaps; i++, n++) {
      const w = Math.max(0, 1 - Math.abs(i - centre) / support);
      weights[o * maxTaps + n] = w;
      sum += w;
    }
    if (sum === 0) {
      // The centre lies outside the image (only at the borders when enlarging): take the nearest edge pixel.
      start[o] = Math.min(inSize - 1, Math.max(0, Math.round(centre)));
      count[o] = 1;
      weights[o * maxTaps] = 1;
      continue;
    }
    start[o] = lo;
    count[o] = n;
    for (let k = 0; k < n; k++) weights[o * maxTaps + k] /= sum;
  }
  return { start, count, weights, maxTaps };
}

function areaTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const maxTaps = Math.ceil(scale) + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * maxTaps);
  for (let o = 0; o < outSize; o++) {
    // Source interval [a, b) of this output pixel; integer arithmetic first so exact factors get exact weights.
    const a = (o * inSize) / outSize, b = ((o + 1) * inSize) / outSize;
    const lo = Math.floor(a), hi = Math.min(inSize, Math.ceil(b));
    start[o] = lo;
    count[o] = hi - lo;
    for (let i = lo; i < hi; i++) weights[o * maxTaps + i - lo] = (Math.min(b, i + 1) - Math.max(a, i)) / scale;
  }
  return { start, count, weights, maxTaps };
}

/** Resize an interleaved HWC image with `channels` channels (any numeric array) to outW×outH, as float32. */
export function resizeLinear(
  src: ArrayLike<number>, width: number, height: number, channels: number, outW: number, outH: number,
): Float32Array {
  if (outW === width && outH === height) return Float32Array.from(src as ArrayLike<number>);
  return resizeLinearWindow(src, width, height, channels, outW, outH, { x0: 0, y0: 0, x1: outW, y1: outH });
}

/**
 * Like resizeLinear, but only output pixels inside the window [x0, x1) × [y0, y1) are computed (the rest of the
 * returned outW×outH image is 0). The runner only needs the generated pixels under the hole.
 */
export function resizeLinearWindow(
  src: ArrayLike<number>, width: number, height: number, channels: number, outW: number, outH: number,
  win: { x0: number; y0: number; x1: number; y1: number },
): Float32Array {
  const tx = taps(width, outW);
  const ty = taps(height, outH);
  const C = channels;
  // Input rows the window's output rows read.
  let r0 = height, r1 = 0;
  for (let oy = win.y0; oy < win.y1; oy++) {
    r0 = Math.min(r0, ty.start[oy]);
    r1 = Math.max(r1, ty.start[oy] + ty.count[oy]);
  }
  const out = new Float32Array(outH * outW * C);
  if (r1 <= r0 || win.x1 <= win.x0) return out;
  // Horizontal pass over those rows and the window's columns: mid[(y − r0) · outW + ox].
  const mid = new Float32Array((r1 - r0) * outW * C);
  const tw = tx.weights, ts = tx.start, tc = tx.count, tm = tx.maxTaps;
  for (let y = r0; y < r1; y++) {
    const rowIn = y * width * C;
    const rowMid = (y - r0) * outW * C;
    if (C === 3) {
      // The common case, unrolled: about 3× faster than the generic loop in V8.
      for (let ox = win.x0; ox < win.x1; ox++) {
        const n = tc[ox], wo = ox * tm;
        let a0 = 0, a1 = 0, a2 = 0;
        for (let k = 0, i = rowIn + ts[ox] * 3; k < n; k++, i += 3) {
          const w = tw[wo + k];
          a0 += w * src[i];
          a1 += w * src[i + 1];
          a2 += w * src[i + 2];
        }
        const o = rowMid + ox * 3;
        mid[o] = a0;
        mid[o + 1] = a1;
        mid[o + 2] = a2;
      }
      continue;
    }
    for (let ox = win.x0; ox < win.x1; ox++) {
      const s = ts[ox], n = tc[ox], wo = ox * tm;
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let k = 0, i = rowIn + s * C + c; k < n; k++, i += C) acc += tw[wo + k] * src[i];
        mid[rowMid + ox * C + c] = acc;
      }
    }
  }
  // Vertical pass, tap by tap over contiguous rows.
  const rowLen = outW * C;
  const xa = win.x0 * C, xb = win.x1 * C;
  for (let oy = win.y0; oy < win.y1; oy++) {
    const s = ty.start[oy] - r0, n = ty.count[oy], wo = oy * ty.maxTaps;
    const o = oy * rowLen;
    if (n === 2) {
      // Enlarging always lands here (two taps): one pass, no read-modify-write of the output row.
      const w0 = ty.weights[wo], w1 = ty.weights[wo + 1];
      const m0 = s * rowLen, m1 = m0 + rowLen;
      for (let x = xa; x < xb; x++) out[o + x] = w0 * mid[m0 + x] + w1 * mid[m1 + x];
      continue;
    }
    for (let k = 0; k < n; k++) {
      const w = ty.weights[wo + k];
      const m = (s + k) * rowLen;
      for (let x = xa; x < xb; x++) out[o + x] += w * mid[m + x];
    }
  }
  return out;
}

/**
 * Resize a binary mask so that it never shrinks: an output pixel is 1 when any input pixel it overlaps is 1
 * (DESIGN §1). Returns 0/1 bytes.
 */
export function resizeMaskAny(src: Uint8Array, width: number, height: number, outW: number, outH: number): Uint8Array {
  if (outW === width && outH === height) return Uint8Array.from(src, (v) => (v ? 1 : 0));
  // 2-D prefix sums of the hole indicator: each output pixel asks "any hole in this source rectangle?" in O(1).
  const W1 = width + 1;
  const sum = new Int32Array(W1 * (height + 1));
  for (let y = 0; y < height; y++) {
    let row = 0;
    for (let x = 0; x < width; x++) {
      row += src[y * width + x] ? 1 : 0;
      sum[(y + 1) * W1 + x + 1] = sum[y * W1 + x + 1] + row;
    }
  }
  const out = new Uint8Array(outW * outH);
  for (let oy = 0; oy < outH; oy++) {
    const y0 = Math.floor((oy * height) / outH);
    const y1 = Math.max(y0 + 1, Math.ceil(((oy + 1) * height) / outH));
    for (let ox = 0; ox < outW; ox++) {
      const x0 = Math.floor((ox * width) / outW);
      const x1 = Math.max(x0 + 1, Math.ceil(((ox + 1) * width) / outW));
      const n = sum[y1 * W1 + x1] - sum[y0 * W1 + x1] - sum[y1 * W1 + x0] + sum[y0 * W1 + x0];
      out[oy * outW + ox] = n > 0 ? 1 : 0;
    }
  }
  return out;
}

/** Grow a 0/1 mask by r pixels in every direction (square neighbourhood). */
export function dilateMask(src: Uint8Array, width: number, height: number, r: number): Uint8Array {
  if (r <= 0) return src.slice();
  // Separable max filter: a pixel is set when a set pixel lies within r along the row, then along the column.
  const pass = (inp: Uint8Array, n: number, lines: number, at: (line: number, i: number) => number): Uint8Array => {
    const out = new Uint8Array(inp.length);
    for (let l = 0; l < lines; l++) {
      let last = -Infinity; // index of the last set pixel seen, scanning forward
      for (let i = 0; i < n; i++) {
        if (inp[at(l, i)]) last = i;
        if (i - last <= r) out[at(l, i)] = 1;
      }
      last = Infinity; // scanning backward
      for (let i = n - 1; i >= 0; i--) {
        if (inp[at(l, i)]) last = i;
        if (last - i <= r) out[at(l, i)] = 1;
      }
    }
    return out;
  };
  const rows = pass(src, width, height, (y, x) => y * width + x);
  return pass(rows, height, width, (x, y) => y * width + x);
}
