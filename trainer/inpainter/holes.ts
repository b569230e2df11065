import type { Box, Mask } from '../../manifests/pixels.ts';
import type { Rng } from '../../manifests/rng.ts';

/**
 * Training holes for the inpainter: random rectangles placed where there is no object, so the pixels under the
 * hole are real background and serve as the ground truth. (A hole over the object would teach the model to paint
 * the object back, the opposite of a counterfactual.)
 */

export interface HoleOptions {
  /** hole side as a fraction of the image side, drawn uniformly in [min, max] per axis */
  minFrac: number;
  maxFrac: number;
  /** placements tried per image before giving up on it */
  tries: number;
}

export const DEFAULT_HOLES: HoleOptions = { minFrac: 0.2, maxFrac: 0.5, tries: 30 };

/** Summed-area table of a 0/1 mask: the object pixel count of any rectangle in O(1). */
export class MaskIntegral {
  private readonly sum: Int32Array;
  constructor(readonly mask: Mask) {
    const { width: W, height: H, data } = mask;
    this.sum = new Int32Array((W + 1) * (H + 1));
    for (let y = 0; y < H; y++) {
      let row = 0;
      for (let x = 0; x < W; x++) {
        row += data[y * W + x] ? 1 : 0;
        this.sum[(y + 1) * (W + 1) + x + 1] = this.sum[y * (W + 1) + x + 1] + row;
      }
    }
  }
  count(b: Box): number {
    const W1 = this.mask.width + 1;
    const s = this.sum;
    return s[(b.y + b.h) * W1 + b.x + b.w] - s[b.y * W1 + b.x + b.w] - s[(b.y + b.h) * W1 + b.x] + s[b.y * W1 + b.x];
  }
}

/** A rectangle inside the image that touches no object pixel, or null when `tries` draws all hit the object. */
export function sampleBackgroundHole(object: MaskIntegral, rng: Rng, o: HoleOptions = DEFAULT_HOLES): Box | null {
  const { width: W, height: H } = object.mask;
  const side = (n: number) => Math.max(1, Math.round(n * (o.minFrac + (o.maxFrac - o.minFrac) * rng.next())));
  for (let t = 0; t < o.tries; t++) {
    const w = side(W), h = side(H);
    const b = { x: rng.int(W - w + 1), y: rng.int(H - h + 1), w, h };
    if (object.count(b) === 0) return b;
  }
  return null;
}

export function boxToMask(b: Box, width: number, height: number): Mask {
  const data = new Uint8Array(width * height);
  for (let y = b.y; y < b.y + b.h; y++) data.fill(1, y * width + b.x, y * width + b.x + b.w);
  return { width, height, data };
}

/** Grow a mask by r pixels (square): keeps training holes a pixel away from the object's blurred edge. */
export function growMask(m: Mask, r: number): Mask {
  if (r <= 0) return { width: m.width, height: m.height, data: m.data.slice() };
  const { width: W, height: H } = m;
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      if (!m.data[y * W + x]) continue;
      for (let yy = Math.max(0, y - r); yy <= Math.min(H - 1, y + r); yy++) out.fill(1, yy * W + Math.max(0, x - r), yy * W + Math.min(W - 1, x + r) + 1);
    }
  }
  return { width: W, height: H, data: out };
}
