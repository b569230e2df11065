import sharp from 'sharp';
import { UserError } from '../manifests/errors.ts';
import { boundingBoxOfMask } from '../manifests/masks.ts';
import type { Box, Mask, RGBImage } from '../manifests/pixels.ts';
import type { Rng } from '../manifests/rng.ts';

/**
 * Train/eval preprocessing (DESIGN §6, paper): train resizes to round(S·8/7) (256 for 224), takes a random S×S crop that
 * keeps part of the object, flips horizontally and normalises to [−1, 1]; eval resizes to S×S. The geometry is
 * pure functions over typed arrays so that a mask goes through exactly the same crop and flip as its image.
 */

/**
 * Side of the train-time resize for crop size S: round(S·8/7), the paper's 256 for a 224 crop (S + S/8 would give
 * 252). S = 32 → 37, 64 → 73, 128 → 146.
 */
export function trainResizeSide(size: number): number {
  return Math.round((size * 8) / 7);
}

/** Decode an image file and resize it to w×h (aspect not kept, as the paper's 256×256), 8-bit sRGB without alpha. */
export async function decodeResized(file: string, w: number, h: number, where?: { file: string; row: string | number }): Promise<RGBImage> {
  try {
    const { data, info } = await sharp(file)
      .removeAlpha()
      .resize(w, h, { fit: 'fill', kernel: 'linear' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded ${info.channels} channels, expected 3`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (e) {
    const msg = (e as Error).message;
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT' || /missing|no such file/i.test(msg);
    throw new UserError(missing ? `image file not found: ${file}` : `cannot decode image ${file} (${msg})`, {
      file: where?.file ?? file,
      row: where?.row,
      fix: missing ? 'rebuild the dataset (`make dataset`) or corpus (`make generate`) that lists it' : 'replace the file with a valid PNG/JPEG',
    });
  }
}

/**
 * Source index range covered by target pixel t of an axis resized from `from` to `to`. Upsizing: the nearest
 * source pixel (centre sampling). Downsizing: every source pixel the target footprint overlaps, so an object
 * pixel anywhere under it survives (DESIGN §1: resizing must not shrink the object).
 */
function footprint(t: number, from: number, to: number): [number, number] {
  if (to >= from) {
    const s = Math.min(from - 1, Math.floor(((t + 0.5) * from) / to));
    return [s, s + 1];
  }
  const s0 = Math.floor((t * from) / to);
  const s1 = Math.min(from, Math.ceil(((t + 1) * from) / to));
  return [s0, Math.max(s0 + 1, s1)];
}

/** Resize a binary mask: nearest when upsizing, any-over the footprint when downsizing (per axis). */
export function resizeMask(m: Mask, width: number, height: number): Mask {
  if (m.width === width && m.height === height) return { width, height, data: m.data.slice() };
  const out = new Uint8Array(width * height);
  const xs = Array.from({ length: width }, (_, x) => footprint(x, m.width, width));
  for (let y = 0; y < height; y++) {
    const [y0, y1] = footprint(y, m.height, height);
    for (let x = 0; x < width; x++) {
      const [x0, x1] = xs[x];
      let on = 0;
      for (let sy = y0; sy < y1 && !on; sy++) {
        const row = sy * m.width;
        for (let sx = x0; sx < x1; sx++) if (m.data[row + sx]) { on = 1; break; }
      }
      out[y * width + x] = on;
    }
  }
  return { width, height, data: out };
}

export interface Crop {
  x: number;
  y: number;
  size: number;
  flip: boolean;
}

function overlaps(b: Box, x: number, y: number, size: number): boolean {
  return b.x < x + size && x < b.x + b.w && b.y < y + size && y < b.y + b.h;
}

/**
 * A random size×size crop of a width×height image that overlaps the object's bounding box, plus a coin flip.
 * Rejection sampling (up to `tries` draws, the paper's "retry"), then the valid crop nearest to the box centre,
 * which always overlaps. Without a box any crop is fine.
 */
export function chooseCrop(width: number, height: number, size: number, box: Box | null, rng: Rng, tries = 20): Crop {
  if (size > width || size > height) throw new Error(`chooseCrop: crop ${size} larger than the image ${width}×${height}`);
  const maxX = width - size, maxY = height - size;
  let x = rng.int(maxX + 1), y = rng.int(maxY + 1);
  if (box) {
    for (let t = 1; t < tries && !overlaps(box, x, y, size); t++) { x = rng.int(maxX + 1); y = rng.int(maxY + 1); }
    if (!overlaps(box, x, y, size)) {
      const clamp = (v: number, hi: number): number => Math.min(hi, Math.max(0, Math.round(v)));
      x = clamp(box.x + box.w / 2 - size / 2, maxX);
      y = clamp(box.y + box.h / 2 - size / 2, maxY);
    }
  }
  return { x, y, size, flip: rng.next() < 0.5 };
}

/** Crop then (optionally) mirror left-right an interleaved image of `channels` bytes per pixel. */
function cropFlip(src: Uint8Array, width: number, channels: number, c: Crop): Uint8Array {
  const out = new Uint8Array(c.size * c.size * channels);
  for (let y = 0; y < c.size; y++) {
    const srcRow = ((c.y + y) * width + c.x) * channels;
    const dstRow = y * c.size * channels;
    if (!c.flip) {
      out.set(src.subarray(srcRow, srcRow + c.size * channels), dstRow);
      continue;
    }
    for (let x = 0; x < c.size; x++) {
      const s = srcRow + (c.size - 1 - x) * channels;
      const d = dstRow + x * channels;
      for (let k = 0; k < channels; k++) out[d + k] = src[s + k];
    }
  }
  return out;
}

export function applyCropImage(img: RGBImage, c: Crop): RGBImage {
  return { width: c.size, height: c.size, data: cropFlip(img.data, img.width, 3, c) };
}

export function applyCropMask(m: Mask, c: Crop): Mask {
  return { width: c.size, height: c.size, data: cropFlip(m.data, m.width, 1, c) };
}

/** Write an image's pixels as float NHWC values in [−1, 1] (v / 127.5 − 1) at `offset` of `out`. */
export function writeNormalised(img: RGBImage, out: Float32Array, offset: number): void {
  const d = img.data;
  for (let i = 0; i < d.length; i++) out[offset + i] = d[i] / 127.5 - 1;
}

/** The bounding box of a mask (null when empty), re-exported for the crop. */
export function objectBox(m: Mask | null): Box | null {
  return m ? boundingBoxOfMask(m) : null;
}
