import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import { tileInfill } from '../infills/tile.ts';

/**
 * The stress-test variants (Xiao et al.'s ImageNet-9 "backgrounds challenge", built for any dataset with masks or
 * boxes) as pure functions over typed arrays. `object` is the object mask (segmentation where the dataset has one,
 * else the box), `box` the object's bounding-box hole. Black is 0 in every channel, as IN-9's Only-FG / No-FG.
 */

/** Every variant, in manifest order. `attr_flip` exists only for datasets with a spurious attribute. */
export const STRESS_VARIANTS = [
  'original', 'only_fg', 'no_fg', 'only_bg_b', 'only_bg_t', 'mixed_same', 'mixed_rand', 'mixed_next', 'attr_flip',
] as const;
/** One stress-test variant name. */
export type StressVariant = (typeof STRESS_VARIANTS)[number];
/** The variants whose background comes from another image (a donor). */
export const DONOR_VARIANTS = ['mixed_same', 'mixed_rand', 'mixed_next', 'attr_flip'] as const satisfies readonly StressVariant[];
/** A variant that takes a donor's background. */
export type DonorVariant = (typeof DONOR_VARIANTS)[number];

/** One line per variant, for --help and the docs. */
export const VARIANT_DOCS: Record<StressVariant, string> = {
  original: 'the image as it is',
  only_fg: 'the object kept, everything else black',
  no_fg: 'the object region black, the background kept',
  only_bg_b: 'the object\'s bounding box black',
  only_bg_t: 'the object\'s bounding box filled by tiling the largest background rectangle (cf-tile)',
  mixed_same: 'the object on the background of another image of the same class',
  mixed_rand: 'the object on the background of an image of a random other class',
  mixed_next: 'the object on the background of an image of class (y + 1) mod K',
  attr_flip: 'the object on the background of an image with another value of the spurious attribute (Waterbirds place, CCT location)',
};

export const isDonorVariant = (v: StressVariant): v is DonorVariant => (DONOR_VARIANTS as readonly string[]).includes(v);

/** A variant image, or why this image has none (recorded as status `skipped`). */
export type VariantResult = { status: 'ok'; image: RGBImage } | { status: 'skipped'; reason: string };

function keepWhere(img: RGBImage, m: Mask, keepOn: 0 | 1): RGBImage {
  const out = new Uint8Array(img.data.length);
  const src = img.data, r = m.data;
  for (let i = 0, p = 0; i < r.length; i++, p += 3) {
    if ((r[i] ? 1 : 0) === keepOn) { out[p] = src[p]; out[p + 1] = src[p + 1]; out[p + 2] = src[p + 2]; }
  }
  return { width: img.width, height: img.height, data: out };
}

/** Only-FG: x ⊙ m (background black). */
export function onlyForeground(img: RGBImage, object: Mask): RGBImage {
  return keepWhere(img, object, 1);
}

/** No-FG: x ⊙ (1 − m) (object black). */
export function noForeground(img: RGBImage, object: Mask): RGBImage {
  return keepWhere(img, object, 0);
}

/** Only-BG-B: x ⊙ (1 − box) (the object's box black, so not even its outline is left). */
export function onlyBackgroundBlack(img: RGBImage, box: Mask): RGBImage {
  return keepWhere(img, box, 0);
}

/** Only-BG-T: the box hole tiled from the largest background rectangle (the cf-tile infill, maxrect). */
export function onlyBackgroundTiled(img: RGBImage, box: Mask): VariantResult {
  const t = tileInfill(img, box, 'maxrect');
  return t.status === 'ok' ? { status: 'ok', image: t.image } : t;
}

/**
 * The donor's background with its own object removed: Tile over the donor's box hole, as f-mixed-rand does, so the
 * donor's object (whose shape would leak its class) is gone. `donor` and `donorBox` are at the recipient's size.
 */
export function donorBackground(donor: RGBImage, donorBox: Mask): VariantResult {
  const t = tileInfill(donor, donorBox, 'maxrect');
  if (t.status !== 'ok') return { status: 'skipped', reason: `donor background: ${t.reason}` };
  return { status: 'ok', image: t.image };
}

/** x ⊙ m + bg ⊙ (1 − m): the recipient's object pasted on a background of the same size. */
export function pasteObject(img: RGBImage, object: Mask, background: RGBImage): RGBImage {
  if (background.width !== img.width || background.height !== img.height) {
    throw new Error(`pasteObject: background is ${background.width}x${background.height}, image is ${img.width}x${img.height}`);
  }
  const out = background.data.slice();
  const src = img.data, r = object.data;
  for (let i = 0, p = 0; i < r.length; i++, p += 3) {
    if (r[i]) { out[p] = src[p]; out[p + 1] = src[p + 1]; out[p + 2] = src[p + 2]; }
  }
  return { width: img.width, height: img.height, data: out };
}

/** Does the mask leave any background pixel? (A mask covering everything has no background to swap.) */
export function hasBackground(object: Mask): boolean {
  return object.data.some((v) => v === 0);
}

/** A variant without a donor, from the image and its masks. */
export function ownVariant(v: Exclude<StressVariant, DonorVariant>, img: RGBImage, object: Mask, box: Mask): VariantResult {
  switch (v) {
    case 'original': return { status: 'ok', image: { width: img.width, height: img.height, data: img.data.slice() } };
    case 'only_fg': return { status: 'ok', image: onlyForeground(img, object) };
    case 'no_fg': return { status: 'ok', image: noForeground(img, object) };
    case 'only_bg_b': return { status: 'ok', image: onlyBackgroundBlack(img, box) };
    case 'only_bg_t': return onlyBackgroundTiled(img, box);
  }
}

/** A donor variant: the recipient's object (mask `object`) on the donor's object-free background. */
export function swappedVariant(img: RGBImage, object: Mask, donor: RGBImage, donorBox: Mask): VariantResult {
  if (!hasBackground(object)) return { status: 'skipped', reason: 'the object mask covers the whole image: no background to swap (DESIGN §1)' };
  const bg = donorBackground(donor, donorBox);
  if (bg.status !== 'ok') return bg;
  return { status: 'ok', image: pasteObject(img, object, bg.image) };
}
