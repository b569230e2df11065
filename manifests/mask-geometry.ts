import { newMask, type Box, type Mask } from './pixels.ts';

/** Boxes ↔ masks and a mask's bounding box: the pure pixel geometry of object annotations (DESIGN §1). */

/**
 * The union of boxes (flat [x, y, w, h, ...]) as a mask, clipped to the image. A pixel the box only partly
 * covers is object (floor of the start, ceil of the end): DESIGN §1, never shrink the object.
 * Boxes with a non-finite coordinate or a non-positive size are ignored (the real CCT has NaN boxes).
 */
export function boxesToMask(boxes: readonly number[], width: number, height: number): Mask {
  const m = newMask(width, height);
  for (let i = 0; i + 3 < boxes.length; i += 4) {
    const [x, y, w, h] = [boxes[i], boxes[i + 1], boxes[i + 2], boxes[i + 3]];
    if (![x, y, w, h].every(Number.isFinite) || w <= 0 || h <= 0) continue;
    const x0 = Math.max(0, Math.floor(x));
    const y0 = Math.max(0, Math.floor(y));
    const x1 = Math.min(width, Math.ceil(x + w));
    const y1 = Math.min(height, Math.ceil(y + h));
    for (let yy = y0; yy < y1; yy++) m.data.fill(1, yy * width + x0, Math.max(yy * width + x0, yy * width + x1));
  }
  return m;
}

/** Tight integer bounding box of the object pixels; null for an empty mask. */
export function boundingBoxOfMask(m: Mask): Box | null {
  const W = m.width, n = W * m.height;
  const data = m.data.length > n ? m.data.subarray(0, n) : m.data; // bytes past the last row are no pixels
  // the first and last set pixels give the rows; only pixels outside the columns found so far can widen the box,
  // so each row in between is scanned from its ends inward and the middle is never read
  const first = firstSetIndex(data);
  if (first < 0) return null;
  const last = lastSetIndex(data);
  const y0 = Math.floor(first / W), y1 = Math.floor(last / W);
  let x0 = Math.min(first - y0 * W, last - y1 * W), x1 = Math.max(first - y0 * W, last - y1 * W);
  for (let off = y0 * W; off <= y1 * W; off += W) {
    for (let x = 0; x < x0; x++) if (data[off + x]) { x0 = x; break; }
    for (let x = W - 1; x > x1; x--) if (data[off + x]) { x1 = x; break; }
  }
  return { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

/**
 * A mask's bytes as `head` unaligned bytes, then 4-byte words through an Int32Array view of the aligned middle (a
 * word is 0 exactly when its 4 bytes are), then the tail bytes: the word-at-a-time mask scans here and in
 * pipeline/masks-ops.ts read masks through it.
 */
export function alignedSpan(d: Uint8Array): { head: number; words: Int32Array } {
  const head = Math.min(d.length, (4 - (d.byteOffset & 3)) & 3);
  const n = (d.length - head) >>> 2;
  return { head, words: n === 0 ? new Int32Array(0) : new Int32Array(d.buffer, d.byteOffset + head, n) };
}

/** Index of the first nonzero byte of d, or −1. */
function firstSetIndex(d: Uint8Array): number {
  const { head, words } = alignedSpan(d);
  for (let i = 0; i < head; i++) if (d[i]) return i;
  let k = 0;
  while (k < words.length && words[k] === 0) k++;
  for (let i = head + (k << 2); i < d.length; i++) if (d[i]) return i;
  return -1;
}

/** Index of the last nonzero byte of d, or −1. */
function lastSetIndex(d: Uint8Array): number {
  const { head, words } = alignedSpan(d);
  const bodyEnd = head + (words.length << 2);
  for (let i = d.length - 1; i >= bodyEnd; i--) if (d[i]) return i;
  let k = words.length - 1;
  while (k >= 0 && words[k] === 0) k--;
  for (let i = head + (k << 2) + 3; i >= 0; i--) if (d[i]) return i;
  return -1;
}

/** The box mask of a segmentation mask: its bounding rectangle filled (empty stays empty). DESIGN §1: CF holes. */
export function boxMaskOf(m: Mask): Mask {
  const b = boundingBoxOfMask(m);
  return b ? boxesToMask([b.x, b.y, b.w, b.h], m.width, m.height) : newMask(m.width, m.height);
}
