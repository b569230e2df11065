import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { Donor } from './types.ts';
import { tileInfill, type TileMode } from './tile.ts';
import { copyRegionPixels } from '../masks-ops.ts';
import { pooledCopy, release } from '../pixel-pool.ts';

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
    const out = pooledCopy(img.data);
    copyRegionPixels(out, bg.image.data, background);
    release(bg.image.data);
    return { status: 'ok', image: { width: img.width, height: img.height, data: out }, donor: d.sourceId };
  }
  return {
    status: 'skipped',
    reason: donors.length === 0
      ? 'mixed-rand: no image of another class in this split to take a background from'
      : `mixed-rand: no usable donor background (${reasons.join('; ')})`,
  };
}
