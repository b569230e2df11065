import { newMask, type Mask } from '../manifests/pixels.ts';
import { takeMask } from './pixel-pool.ts';
import { alignedSpan } from '../manifests/masks.ts';

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

/*
 * Word-at-a-time helpers. Masks are usually 0/1 but any nonzero byte counts as set, so each 32-bit word is first
 * folded to "0x01 in every byte lane that is nonzero": x |= x >>> 4, then x |= x >>> 2, then x |= x >>> 1 leaves
 * in bit j the OR of bits j..j+7, and masking with 0x01010101 keeps bit 0 of each byte, which saw only its own
 * byte's bits. The lanes are handled alike, so the byte order of the platform does not matter. Words are read
 * through alignedSpan (manifests/masks.ts); the unaligned head and tail bytes go one at a time.
 */

/** 0x01 in each byte lane of v that is nonzero, 0 elsewhere. */
function nonzeroLanes(v: number): number {
  v |= v >>> 4;
  v |= v >>> 2;
  v |= v >>> 1;
  return v & 0x01010101;
}

/** 1 − m: the background of an object mask (F infills fill it). */
export function invertMask(m: Mask): Mask {
  const out = takeMask(m.width, m.height);
  const d = m.data, o = out.data;
  const { head, words: w } = alignedSpan(d);
  let i = 0;
  for (; i < head; i++) o[i] = d[i] ? 0 : 1;
  // out is a fresh mask (offset 0), so out's words line up with d's only when d's head is empty; d may be longer
  // than out, whose missing bytes take no writes
  if (head === 0) {
    const nw = Math.min(w.length, o.length >>> 2), ow = new Int32Array(o.buffer, 0, nw);
    for (let k = 0; k < nw; k++) ow[k] = nonzeroLanes(w[k]) ^ 0x01010101;
    i = nw << 2;
  }
  for (; i < d.length; i++) o[i] = d[i] ? 0 : 1;
  return out;
}

/** Number of pixels set. */
export function maskArea(m: Mask): number {
  const d = m.data;
  const { head, words: w } = alignedSpan(d);
  let n = 0;
  for (let i = 0; i < head; i++) if (d[i]) n++;
  // per-lane counts (each lane gains at most 1 per word), folded before a lane could pass 255
  for (let k = 0; k < w.length;) {
    const end = Math.min(w.length, k + 255);
    let lanes = 0;
    for (; k < end; k++) lanes += nonzeroLanes(w[k]);
    n += (lanes & 0xff) + ((lanes >>> 8) & 0xff) + ((lanes >>> 16) & 0xff) + (lanes >>> 24);
  }
  for (let i = head + (w.length << 2); i < d.length; i++) if (d[i]) n++;
  return n;
}

/**
 * A minSpan for maskRuns' callers that also have a per-pixel pass: runs averaging fewer pixels than this (gaps
 * included) cost more to walk than testing every pixel does. Tile's copy on 224² random speckle broke even between
 * spans of 21 and 51; object and background masks run far longer (a 224² ellipse: ~350 pixels a run).
 */
export const RAGGED_SPAN = 32;

/** When maskRuns gives up and returns null. */
export interface RunLimits {
  /** more runs than this */
  maxRuns?: number;
  /** past the first 64 runs, fewer pixels scanned per run than this on average (a ragged mask) */
  minSpan?: number;
}

/**
 * The set pixels of m as maximal runs of consecutive indices, [start, end) pairs in increasing order:
 * [s0, e0, s1, e1, ...]. Runs follow the row-major data, so one may continue from a row's end onto the next row.
 * Long runs (object and background) are crossed a word at a time. With limits, null as soon as one is passed: on
 * a ragged mask a per-pixel pass is cheaper than walking thousands of runs a few pixels long.
 */
export function maskRuns(m: Mask): Int32Array;
export function maskRuns(m: Mask, limits: RunLimits): Int32Array | null;
export function maskRuns(m: Mask, limits: RunLimits = {}): Int32Array | null {
  const maxEntries = 2 * (limits.maxRuns ?? Infinity), minSpan = limits.minSpan ?? 0;
  const d = m.data;
  const { head, words: w } = alignedSpan(d);
  let runs = new Int32Array(64);
  let k = 0;
  for (let i = nextSet(d, w, head, 0); i < d.length; i = nextSet(d, w, head, i)) {
    if (k >= maxEntries || (k >= 128 && k * minSpan > 2 * i)) return null;
    const j = nextClear(d, w, head, i);
    if (k === runs.length) { const r = new Int32Array(2 * k); r.set(runs); runs = r; }
    runs[k++] = i;
    runs[k++] = j;
    i = j;
  }
  return runs.subarray(0, k);
}

/** The first index ≥ i whose byte is nonzero, or d.length. `w` views d's aligned words from byte `head` on. */
function nextSet(d: Uint8Array, w: Int32Array, head: number, i: number): number {
  // ragged masks have short gaps: a few bytes one by one before going word by word
  for (const stop = Math.min(d.length, i + 8); i < stop; i++) if (d[i]) return i;
  if (i < head + (w.length << 2)) {
    for (; i < head || ((i - head) & 3) !== 0; i++) if (d[i]) return i;
    let k = (i - head) >>> 2;
    while (k < w.length && w[k] === 0) k++;
    i = head + (k << 2);
  }
  for (; i < d.length; i++) if (d[i]) return i;
  return d.length;
}

/** The first index ≥ i whose byte is zero, or d.length. */
function nextClear(d: Uint8Array, w: Int32Array, head: number, i: number): number {
  for (const stop = Math.min(d.length, i + 8); i < stop; i++) if (!d[i]) return i;
  if (i < head + (w.length << 2)) {
    for (; i < head || ((i - head) & 3) !== 0; i++) if (!d[i]) return i;
    let k = (i - head) >>> 2;
    // a word has a zero byte iff (v − 0x01010101) & ~v & 0x80808080 ≠ 0 (exact as a yes/no, whichever lane it is)
    while (k < w.length && ((w[k] - 0x01010101) & ~w[k] & 0x80808080) === 0) k++;
    i = head + (k << 2);
  }
  for (; i < d.length; i++) if (!d[i]) return i;
  return d.length;
}

/**
 * out[d..d + n) ← src[s..s + n) for distinct arrays; short copies in a loop, where set() costs more to start. A
 * source range past either end of src also takes the loop, which writes 0 for the missing bytes as a per-pixel
 * copy does (subarray would clamp the range instead).
 */
export function copyBytes(out: Uint8Array, d: number, src: Uint8Array, s: number, n: number): void {
  if (n >= 24 && s >= 0 && s + n <= src.length) { out.set(src.subarray(s, s + n), d); return; }
  for (const e = d + n; d < e; d++, s++) out[d] = src[s];
}

/**
 * out ← src inside `region`, in place (RGB pixels, out and src of the same size): x·(1−r) + src·r. One contiguous
 * copy per run of region pixels; a ragged region pixel by pixel. Region bytes past the image's end write nothing.
 */
export function copyRegionPixels(out: Uint8Array, src: Uint8Array, region: Mask): void {
  const n = out.length / 3;
  const runs = maskRuns(region, { minSpan: RAGGED_SPAN });
  if (runs) {
    for (let k = 0; k < runs.length && runs[k] < n; k += 2) {
      const s = runs[k] * 3;
      copyBytes(out, s, src, s, Math.min(runs[k + 1], n) * 3 - s);
    }
    return;
  }
  const r = region.data;
  for (let i = 0, p = 0; i < r.length && i < n; i++, p += 3) {
    if (r[i]) { out[p] = src[p]; out[p + 1] = src[p + 1]; out[p + 2] = src[p + 2]; }
  }
}

/** Union of two masks of the same size. */
export function unionMask(a: Mask, b: Mask): Mask {
  const out = newMask(a.width, a.height);
  for (let i = 0; i < out.data.length; i++) out.data[i] = a.data[i] | b.data[i] ? 1 : 0;
  return out;
}
