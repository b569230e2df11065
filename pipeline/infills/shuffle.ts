import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { Rng } from '../../manifests/rng.ts';
import { FastStream } from './fast-stream.ts';
import { maskRuns } from '../masks-ops.ts';
import { pooledCopy, release, takeInt32 } from '../pixel-pool.ts';

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
  const out = pooledCopy(img.data);
  // byte offsets of the region's pixels, in raster order
  const runs = maskRuns(region);
  let n = 0;
  for (let k = 0; k < runs.length; k += 2) n += runs[k + 1] - runs[k];
  const idx = takeInt32(n);
  for (let k = 0, j = 0; k < runs.length; k += 2) for (let i = runs[k]; i < runs[k + 1]; i++) idx[j++] = i * 3;

  if (scope === 'region') {
    // Fisher–Yates over pixel triples, written straight into the output: out[idx[i]] ← in[idx[perm[i]]]. The swaps
    // are applied to a copy of idx rather than to an identity perm, which gives idx[perm[i]] directly.
    const from = takeInt32(n);
    from.set(idx);
    rng.shuffle(from);
    const src = img.data;
    for (let i = 0; i < n; i++) {
      const d = idx[i], s = from[i];
      out[d] = src[s]; out[d + 1] = src[s + 1]; out[d + 2] = src[s + 2];
    }
    release(from);
  } else if (scope === 'image') {
    // Int32Array like region's offsets, so FastStream.shuffle sees one element kind (polymorphic access costs ~20%)
    const vals = new Int32Array(3 * n);
    for (let i = 0; i < n; i++) { const s = idx[i]; vals[3 * i] = img.data[s]; vals[3 * i + 1] = img.data[s + 1]; vals[3 * i + 2] = img.data[s + 2]; }
    rng.shuffle(vals);
    for (let i = 0; i < n; i++) { const d = idx[i]; out[d] = vals[3 * i]; out[d + 1] = vals[3 * i + 1]; out[d + 2] = vals[3 * i + 2]; }
  } else {
    const images = [img, ...pool];
    let total = 0;
    for (const im of images) total += im.data.length;
    const vals = new Uint8Array(total);
    let o = 0;
    for (const im of images) { vals.set(im.data, o); o += im.data.length; }
    // partial Fisher–Yates: the first 3n slots become a uniform sample without replacement
    rng.shuffleFirst(vals, 3 * n);
    for (let i = 0; i < n; i++) { const d = idx[i]; out[d] = vals[3 * i]; out[d + 1] = vals[3 * i + 1]; out[d + 2] = vals[3 * i + 2]; }
  }
  release(idx);
  return { width: img.width, height: img.height, data: out };
}
