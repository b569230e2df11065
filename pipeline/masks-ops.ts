import { newMask, type Mask } from '../manifests/pixels.ts';

/**
 * Mask operations the generator needs on top of the contract's manifests/masks.ts.
 * All are O(U) over typed arrays and never modify their inputs.
 */

/**
 * Resize a binary mask so the object never shrinks (DESIGN §1): an output pixel is object when ANY source pixel
 * it overlaps, even partly, is object. Separable: an OR over each output column's source x-range, then over each
 * output row's source y-range. Upscaling marks every output pixel whose footprint touches an object pixel, which is
 * the ~1 px implicit dilation the design accepts. Returns `m` itself when the size already matches (masks are
 * never modified in place).
 */
export function resizeMaskAnyOver(m: Mask, width: number, height: number): Mask {
  if (m.width === width && m.height === height) return m;
  const xr = spans(m.width, width);
  const yr = spans(m.height, height);
  // pass 1: rows of the source, columns of the output
  const tmp = new Uint8Array(m.height * width);
  for (let y = 0; y < m.height; y++) {
    const src = y * m.width;
    const dst = y * width;
    for (let x = 0; x < width; x++) {
      const a = xr[2 * x], b = xr[2 * x + 1];
      let on = 0;
      for (let k = src + a; k < src + b; k++) if (m.data[k]) { on = 1; break; }
      tmp[dst + x] = on;
    }
  }
  const out = newMask(width, height);
  for (let y = 0; y < height; y++) {
    const a = yr[2 * y], b = yr[2 * y + 1];
    const dst = y * width;
    for (let sy = a; sy < b; sy++) {
      const src = sy * width;
      for (let x = 0; x < width; x++) out.data[dst + x] |= tmp[src + x];
    }
  }
  return out;
}

/**
 * For each output index i, the half-open source range [floor(i·s), ceil((i+1)·s)) with s = n/m: every source
 * cell the output cell's footprint overlaps. Computed in integers (i·n / m) so no float error drops a cell.
 */
function spans(n: number, m: number): Int32Array {
  const r = new Int32Array(2 * m);
  for (let i = 0; i < m; i++) {
    r[2 * i] = Math.floor((i * n) / m);
    r[2 * i + 1] = Math.min(n, Math.ceil(((i + 1) * n) / m));
  }
  return r;
}

/** 1 − m: the background of an object mask (F infills fill it). */
export function invertMask(m: Mask): Mask {
  const out = newMask(m.width, m.height);
  for (let i = 0; i < m.data.length; i++) out.data[i] = m.data[i] ? 0 : 1;
  return out;
}

/** Number of pixels set. */
export function maskArea(m: Mask): number {
  let n = 0;
  for (let i = 0; i < m.data.length; i++) if (m.data[i]) n++;
  return n;
}

/** Union of two masks of the same size. */
export function unionMask(a: Mask, b: Mask): Mask {
  const out = newMask(a.width, a.height);
  for (let i = 0; i < out.data.length; i++) out.data[i] = a.data[i] | b.data[i] ? 1 : 0;
  return out;
}
