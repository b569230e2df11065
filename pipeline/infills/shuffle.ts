import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { Rng } from '../../manifests/rng.ts';
import { FastStream } from './fast-stream.ts';

/**
 * - `region`: permute whole RGB pixels among the region's pixels (paper default; keeps each pixel's colour).
 * - `image`: permute every scalar of the region across pixels AND channels (the region's value multiset is kept,
 *   colours are not).
 * - `batch`: the authors' code permutes the whole batch tensor; offline we rebuild that batch from the image and
 *   its donors (other images of the same split, seeded): the region's scalars are a uniform draw without
 *   replacement from every scalar of those images, objects included, as a permuted batch tensor would give.
 */
export type ShuffleScope = 'region' | 'image' | 'batch';

export function shuffleInfill(img: RGBImage, region: Mask, itemRng: Rng, scope: ShuffleScope, pool: readonly RGBImage[] = []): RGBImage {
  // the permutation comes from a FastStream seeded by the item rng (one draw per element, ~10^5 per image)
  const rng = new FastStream(itemRng);
  const out = img.data.slice();
  const r = region.data;
  let n = 0;
  for (let i = 0; i < r.length; i++) if (r[i]) n++;
  const idx = new Int32Array(n);
  for (let i = 0, k = 0; i < r.length; i++) if (r[i]) idx[k++] = i * 3;

  if (scope === 'region') {
    // Fisher–Yates over pixel triples, written straight into the output: out[idx[i]] ← in[idx[perm[i]]].
    const perm = new Int32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    const src = img.data;
    for (let i = 0; i < n; i++) {
      const d = idx[i], s = idx[perm[i]];
      out[d] = src[s]; out[d + 1] = src[s + 1]; out[d + 2] = src[s + 2];
    }
  } else if (scope === 'image') {
    const vals = new Uint8Array(3 * n);
    for (let i = 0; i < n; i++) { const s = idx[i]; vals[3 * i] = img.data[s]; vals[3 * i + 1] = img.data[s + 1]; vals[3 * i + 2] = img.data[s + 2]; }
    for (let i = vals.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = vals[i]; vals[i] = vals[j]; vals[j] = t;
    }
    for (let i = 0; i < n; i++) { const d = idx[i]; out[d] = vals[3 * i]; out[d + 1] = vals[3 * i + 1]; out[d + 2] = vals[3 * i + 2]; }
  } else {
    const images = [img, ...pool];
    let total = 0;
    for (const im of images) total += im.data.length;
    const vals = new Uint8Array(total);
    let o = 0;
    for (const im of images) { vals.set(im.data, o); o += im.data.length; }
    // partial Fisher–Yates: the first 3n slots become a uniform sample without replacement
    const need = 3 * n;
    for (let i = 0; i < need; i++) {
      const j = i + rng.int(total - i);
      const t = vals[i]; vals[i] = vals[j]; vals[j] = t;
    }
    for (let i = 0; i < n; i++) { const d = idx[i]; out[d] = vals[3 * i]; out[d + 1] = vals[3 * i + 1]; out[d + 2] = vals[3 * i + 2]; }
  }
  return { width: img.width, height: img.height, data: out };
}
