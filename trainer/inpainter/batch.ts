import type { Box } from '../../manifests/pixels.ts';
import type { Rng } from '../../manifests/rng.ts';
import type { BackgroundImage } from './data.ts';
import { sampleBackgroundHole, type HoleOptions } from './holes.ts';

/** One training/eval pair: an image and a background hole in it (and whether to mirror both). */
export interface HolePair {
  index: number;
  hole: Box;
  flip: boolean;
}

/** Draw `n` pairs: a random image, a background hole in it (images whose background has no room are redrawn). */
export function drawPairs(images: readonly BackgroundImage[], n: number, rng: Rng, holes: HoleOptions, flip: boolean): HolePair[] {
  const out: HolePair[] = [];
  let misses = 0;
  while (out.length < n) {
    const index = rng.int(images.length);
    const hole = sampleBackgroundHole(images[index].avoid, rng, holes);
    if (!hole) {
      if (++misses > 50 * n) throw new Error('no image has room for a background hole of the requested size; lower --hole-max');
      continue;
    }
    out.push({ index, hole, flip: flip && rng.next() < 0.5 });
  }
  return out;
}

/**
 * Pack pairs as NHWC float tensors: images in [−1, 1] (the intact image: it is also the target) and masks with
 * 1 in the hole. Mirroring applies to image and hole together.
 */
export function packPairs(images: readonly BackgroundImage[], pairs: readonly HolePair[], size: number): { image: Float32Array; mask: Float32Array } {
  const S = size;
  const image = new Float32Array(pairs.length * S * S * 3);
  const mask = new Float32Array(pairs.length * S * S);
  pairs.forEach((p, b) => {
    const src = images[p.index].image.data;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const sx = p.flip ? S - 1 - x : x;
        const o = (b * S + y) * S + x;
        const i = (y * S + sx) * 3;
        image[o * 3] = src[i] / 127.5 - 1;
        image[o * 3 + 1] = src[i + 1] / 127.5 - 1;
        image[o * 3 + 2] = src[i + 2] / 127.5 - 1;
        const inHole = sx >= p.hole.x && sx < p.hole.x + p.hole.w && y >= p.hole.y && y < p.hole.y + p.hole.h;
        mask[o] = inHole ? 1 : 0;
      }
    }
  });
  return { image, mask };
}
