import type { Box, Mask, RGBImage } from '../../manifests/pixels.ts';
import { copyBytes, maskRuns, RAGGED_SPAN } from '../masks-ops.ts';
import { pooledCopy } from '../pixel-pool.ts';

/**
 * Tile infill (paper Algorithm 1). A is a background rectangle (region = 0 everywhere in it); the image-sized tiling
 * T[y][x] = A[y mod a_h][x mod a_w] (A repeated ⌈w/a_w⌉ × ⌈h/a_h⌉ times from the image's top-left, cropped to w×h)
 * is pasted into the region only.
 *
 * - `maxrect` (paper): A = the largest all-background rectangle, by the O(U) histogram-stack algorithm.
 * - `strip` (the authors' code): A = the longer of the longest run of full-width background rows and the longest run
 *   of full-height background columns, compared by run length as their TileInpainter does (rows win a tie). By
 *   area would pick differently on non-square images: a 2-row run of a 20×6 image (40 px) beats a 5-column run
 *   (30 px) by area, but the authors take the 5 columns.
 * Works for holes touching x = 0 or y = 0 (the authors' code silently skipped those); a region covering every
 * pixel (or, for strip, every row and column) has no source rectangle and is reported, never filled silently.
 */
export type TileMode = 'maxrect' | 'strip';

/**
 * Largest axis-aligned rectangle with mask = 0, or null if every pixel is set. Per row, the column heights of
 * consecutive zeros form a histogram whose largest rectangle a monotone stack finds in O(w), so O(U) overall.
 * Ties keep the first rectangle found: scanning rows top to bottom, the one whose bottom row is highest, then
 * (within a row) the one the stack closes first.
 */
export function largestEmptyRectangle(m: Mask): Box | null {
  return singleBoxAnswer(m) ?? histogramStack(m);
}

/**
 * Fast path for the common CF hole, one filled rectangle: every empty rectangle lies wholly left of, right of, above
 * or below it, so the answer is the largest of those four strips. Used only when that largest strip is unique, so
 * it returns exactly what the histogram-stack scan would (ties are left to the scan and its tie rule).
 */
function singleBoxAnswer(m: Mask): Box | null {
  const { width: W, height: H } = m;
  // count and bounding box from the runs of set pixels: a run within one row spans its own columns, a run that
  // wraps onto later rows covers column W − 1 of its first row and column 0 of its last. A filled rectangle is at
  // most one run per row, so a mask with more runs is no rectangle and is not read further.
  const data = m.data.length > W * H ? m.data.subarray(0, W * H) : m.data; // bytes past the last row are no pixels
  const runs = maskRuns({ width: W, height: H, data }, { maxRuns: H });
  if (!runs) return null;
  let x0 = W, y0 = H, x1 = -1, y1 = -1, n = 0;
  for (let k = 0; k < runs.length; k += 2) {
    const s = runs[k], e = runs[k + 1] - 1;
    n += e - s + 1;
    const ys = Math.floor(s / W), ye = Math.floor(e / W);
    const xs = ys === ye ? s - ys * W : 0, xe = ys === ye ? e - ye * W : W - 1;
    if (xs < x0) x0 = xs;
    if (xe > x1) x1 = xe;
    if (ys < y0) y0 = ys;
    y1 = ye;
  }
  if (n === 0 || n !== (x1 - x0 + 1) * (y1 - y0 + 1)) return null;
  const strips: Box[] = [
    { x: 0, y: 0, w: W, h: y0 }, // above
    { x: 0, y: 0, w: x0, h: H }, // left
    { x: x1 + 1, y: 0, w: W - x1 - 1, h: H }, // right
    { x: 0, y: y1 + 1, w: W, h: H - y1 - 1 }, // below
  ];
  const areas = strips.map((b) => b.w * b.h);
  const best = Math.max(...areas);
  if (best === 0 || areas.filter((a) => a === best).length > 1) return null;
  return strips[areas.indexOf(best)];
}

function histogramStack(m: Mask): Box | null {
  const { width: W, height: H, data } = m;
  const heights = new Int32Array(W + 1); // heights[W] = 0 is the sentinel that empties the stack
  const stack = new Int32Array(W + 1);
  let best: Box | null = null;
  let bestArea = 0;
  for (let y = 0; y < H; y++) {
    const off = y * W;
    for (let x = 0; x < W; x++) heights[x] = data[off + x] ? 0 : heights[x] + 1;
    let top = 0;
    for (let x = 0; x <= W; x++) {
      const h = heights[x];
      while (top > 0 && heights[stack[top - 1]] >= h) {
        const hh = heights[stack[--top]];
        const left = top > 0 ? stack[top - 1] + 1 : 0;
        const area = hh * (x - left);
        if (area > bestArea) {
          bestArea = area;
          best = { x: left, y: y - hh + 1, w: x - left, h: hh };
        }
      }
      stack[top++] = x;
    }
  }
  return best;
}

/** The authors' rectangle: the longest run of all-background rows (full width) or columns (full height). */
export function largestBackgroundStrip(m: Mask): Box | null {
  const { width: W, height: H, data } = m;
  const rowFree = new Uint8Array(H).fill(1);
  const colFree = new Uint8Array(W).fill(1);
  for (let y = 0; y < H; y++) {
    const off = y * W;
    for (let x = 0; x < W; x++) if (data[off + x]) { rowFree[y] = 0; colFree[x] = 0; }
  }
  const rows = longestRun(rowFree);
  const cols = longestRun(colFree);
  if (rows.len === 0 && cols.len === 0) return null;
  // robust_cls_model TileInpainter: `if row_chunk[1] - row_chunk[0] >= col_chunk[1] - col_chunk[0]` (lengths, not areas)
  return rows.len >= cols.len ? { x: 0, y: rows.start, w: W, h: rows.len } : { x: cols.start, y: 0, w: cols.len, h: H };
}

function longestRun(free: Uint8Array): { start: number; len: number } {
  let best = { start: 0, len: 0 };
  let start = -1;
  for (let i = 0; i <= free.length; i++) {
    if (i < free.length && free[i]) { if (start < 0) start = i; continue; }
    if (start >= 0 && i - start > best.len) best = { start, len: i - start };
    start = -1;
  }
  return best;
}

/**
 * Paste the tiling of rectangle `a` of `img` into the region: out[y][x] = img[a.y + y mod a.h][a.x + x mod a.w].
 * `a` is a nonempty integer rectangle, as largestEmptyRectangle and largestBackgroundStrip return.
 */
export function tileFromRectangle(img: RGBImage, region: Mask, a: Box): RGBImage {
  const { width: W, height: H } = img;
  const src = img.data;
  const out = pooledCopy(src);
  const srcCol = new Int32Array(W);
  for (let x = 0; x < W; x++) srcCol[x] = (a.x + (x % a.w)) * 3;
  // Walk the region's runs instead of testing every pixel: within a row, consecutive region pixels read
  // consecutive source pixels until the tiling wraps at a.w, so a long piece of a run is a few contiguous copies.
  const runs = maskRuns(region, { minSpan: RAGGED_SPAN });
  if (!runs) {
    const r = region.data;
    for (let y = 0; y < H; y++) {
      const rowOff = y * W;
      const srcRow = (a.y + (y % a.h)) * W * 3;
      for (let x = 0; x < W; x++) {
        if (!r[rowOff + x]) continue;
        const s = srcRow + srcCol[x], d = (rowOff + x) * 3;
        out[d] = src[s]; out[d + 1] = src[s + 1]; out[d + 2] = src[s + 2];
      }
    }
    return { width: W, height: H, data: out };
  }
  const n = W * H;
  let y = 0, rowStart = 0, srcRow = a.y * W * 3;
  for (let k = 0; k < runs.length && runs[k] < n; k += 2) {
    const end = Math.min(runs[k + 1], n);
    for (let i = runs[k]; i < end;) {
      while (i >= rowStart + W) { y++; rowStart += W; srcRow = (a.y + (y % a.h)) * W * 3; }
      const x1 = Math.min(end, rowStart + W) - rowStart;
      let x = i - rowStart;
      i += x1 - x;
      if (x1 - x < 8 || a.w < 8) {
        // short pieces (ragged masks), or a tile so narrow that it would split pieces as short, pixel by pixel
        for (; x < x1; x++) {
          const s = srcRow + srcCol[x], d = (rowStart + x) * 3;
          out[d] = src[s]; out[d + 1] = src[s + 1]; out[d + 2] = src[s + 2];
        }
        continue;
      }
      for (let cx = x % a.w; x < x1; cx = 0) {
        const len = Math.min(x1 - x, a.w - cx);
        copyBytes(out, (rowStart + x) * 3, src, srcRow + (a.x + cx) * 3, len * 3);
        x += len;
      }
    }
  }
  return { width: W, height: H, data: out };
}

export type TileResult = { status: 'ok'; image: RGBImage; source: Box } | { status: 'skipped'; reason: string };

/** Tile infill of the region; `skipped` (with the reason) when no background rectangle exists. */
export function tileInfill(img: RGBImage, region: Mask, mode: TileMode = 'maxrect'): TileResult {
  const a = mode === 'strip' ? largestBackgroundStrip(region) : largestEmptyRectangle(region);
  if (!a) {
    return {
      status: 'skipped',
      reason: mode === 'strip'
        ? 'tile (strip): no full-width background row or full-height background column; no source rectangle'
        : 'tile: the hole covers the whole image; no background rectangle to tile from',
    };
  }
  return { status: 'ok', image: tileFromRectangle(img, region, a), source: a };
}
