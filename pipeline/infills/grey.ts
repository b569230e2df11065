import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import { maskRuns } from '../masks-ops.ts';
import { pooledCopy } from '../pixel-pool.ts';

/**
 * The grey value written into uint8 images. DESIGN §2 says 0.5 in [0, 1], which the trainer's v/127.5 − 1 maps to 0.
 * 127.5 is not a uint8, so the exact zero is not representable on disk: 128 (round-half-up of 0.5·255, sRGB #808080)
 * lands at +1/255 ≈ 0.0039 after normalising, 127 at −0.0039. Either is one quantisation step off; we take 128, the
 * conventional mid-grey, and record it in the manifest's params so a trainer that needs an exact 0 can map it.
 */
export const GREY_U8 = 128;

/** Grey infill: every region pixel becomes (v, v, v). */
export function greyInfill(img: RGBImage, region: Mask, value: number = GREY_U8): RGBImage {
  const out = pooledCopy(img.data);
  // every channel gets the same value, so a run of pixels is one contiguous fill
  const runs = maskRuns(region);
  for (let k = 0; k < runs.length; k += 2) out.fill(value, runs[k] * 3, runs[k + 1] * 3);
  return { width: img.width, height: img.height, data: out };
}
