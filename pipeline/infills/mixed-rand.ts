import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { Donor } from './types.ts';
import { tileInfill, type TileMode } from './tile.ts';
import { maskRuns, RAGGED_SPAN } from '../masks-ops.ts';

export type MixedRandResult = { status: 'ok'; image: RGBImage; donor: string } | { status: 'skipped'; reason: string };

/**
 * Mixed-Rand (DESIGN §3): keep image i's object, replace its background with another class's tiled background.
 * The donor's own object is removed with Tile over its box hole, and the result fills i's background region
 * (1 − r_i): out = x_i ⊙ r_i + bg_j ⊙ (1 − r_i). Donors come in the pipeline's seeded order, already resized to
 * i's size; the first one whose background can be tiled is used. Donors of i's own class are refused, so a
 * pipeline bug cannot quietly produce a same-class background.
 */
export function mixedRandInfill(img: RGBImage, background: Mask, label: number, donors: readonly Donor[], mode: TileMode = 'maxrect'): MixedRandResult {
  const reasons: string[] = [];
  for (const d of donors) {
    if (d.label === label) { reasons.push(`${d.sourceId}: same class`); continue; }
    if (d.image.width !== img.width || d.image.height !== img.height) {
      throw new Error(`mixed-rand: donor ${d.sourceId} is ${d.image.width}x${d.image.height}, image is ${img.width}x${img.height}`);
    }
    const bg = tileInfill(d.image, d.box, mode);
    if (bg.status !== 'ok') { reasons.push(`${d.sourceId}: ${bg.reason}`); continue; }
    const out = img.data.slice();
    const src = bg.image.data;
    // one contiguous copy per run of background pixels (the pixels past the image's end, if any, write nothing);
    // a ragged mask pixel by pixel
    const runs = maskRuns(background, { minSpan: RAGGED_SPAN });
    if (runs) {
      const n = out.length / 3;
      for (let k = 0; k < runs.length && runs[k] < n; k += 2) {
        const s = runs[k] * 3, e = Math.min(runs[k + 1], n) * 3;
        if (e - s >= 24) out.set(src.subarray(s, e), s);
        else for (let p = s; p < e; p++) out[p] = src[p];
      }
    } else {
      const r = background.data;
      for (let i = 0, p = 0; i < r.length; i++, p += 3) {
        if (r[i]) { out[p] = src[p]; out[p + 1] = src[p + 1]; out[p + 2] = src[p + 2]; }
      }
    }
    return { status: 'ok', image: { width: img.width, height: img.height, data: out }, donor: d.sourceId };
  }
  return {
    status: 'skipped',
    reason: donors.length === 0
      ? 'mixed-rand: no image of another class in this split to take a background from'
      : `mixed-rand: no usable donor background (${reasons.join('; ')})`,
  };
}
