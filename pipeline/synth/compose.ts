import sharp from 'sharp';
import type { Rng } from '../../manifests/rng.ts';
import { cloneImage, newMask, type Mask, type RGBImage } from '../../manifests/pixels.ts';
import { ALPHA_OBJECT_THRESHOLD, type Sprite } from './sprites.ts';

/** Where and how one foreground is drawn; a pure function of the item's rng, so tests can recompute it. */
export interface Placement {
  emoji: string;
  /** rendered sprite side in pixels */
  side: number;
  x: number;
  y: number;
  flip: boolean;
  /** per-channel multiplicative colour jitter */
  gain: [number, number, number];
}

/** Object pixels are at least this bright, so JPEG-blackened no_fg regions are never confused with the object. */
export const FG_MIN = 24;

export function drawPlacement(rng: Rng, emojis: readonly string[], size: number, fgScale: number, colourJitter = 0.12): Placement {
  const emoji = emojis[rng.int(emojis.length)];
  const side = Math.max(4, Math.min(size, Math.round(size * fgScale * (0.85 + 0.3 * rng.next()))));
  const x = rng.int(size - side + 1), y = rng.int(size - side + 1);
  const flip = rng.next() < 0.5;
  const g = () => 1 + (rng.next() * 2 - 1) * colourJitter;
  return { emoji, side, x, y, flip, gain: [g(), g(), g()] };
}

/** The object mask of a sprite placed at (x, y): alpha >= 128, clipped to the canvas. */
export function placementMask(sprite: Sprite, p: Pick<Placement, 'x' | 'y' | 'flip'>, width: number, height: number): Mask {
  const m = newMask(width, height);
  for (let sy = 0; sy < sprite.height; sy++) {
    const y = p.y + sy;
    if (y < 0 || y >= height) continue;
    for (let sx = 0; sx < sprite.width; sx++) {
      const x = p.x + sx;
      if (x < 0 || x >= width) continue;
      const src = p.flip ? sprite.width - 1 - sx : sx;
      if (sprite.rgba[(sy * sprite.width + src) * 4 + 3] >= ALPHA_OBJECT_THRESHOLD) m.data[y * width + x] = 1;
    }
  }
  return m;
}

/**
 * Paste the sprite onto a copy of the background. Binary on the alpha threshold: every pixel is either object
 * (in the returned mask) or untouched background, so the mask is exact.
 */
export function composite(bg: RGBImage, sprite: Sprite, p: Placement): { image: RGBImage; mask: Mask } {
  const image = cloneImage(bg);
  const mask = placementMask(sprite, p, bg.width, bg.height);
  for (let sy = 0; sy < sprite.height; sy++) {
    const y = p.y + sy;
    if (y < 0 || y >= bg.height) continue;
    for (let sx = 0; sx < sprite.width; sx++) {
      const x = p.x + sx;
      if (x < 0 || x >= bg.width || !mask.data[y * bg.width + x]) continue;
      const s = (sy * sprite.width + (p.flip ? sprite.width - 1 - sx : sx)) * 4;
      const d = (y * bg.width + x) * 3;
      for (let c = 0; c < 3; c++) image.data[d + c] = Math.max(FG_MIN, Math.min(255, Math.round(sprite.rgba[s + c] * p.gain[c])));
    }
  }
  return { image, mask };
}

/** The image with the object blacked out (IN-9 no_fg). */
export function blackOut(image: RGBImage, mask: Mask): RGBImage {
  const out = cloneImage(image);
  for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) out.data.fill(0, i * 3, i * 3 + 3);
  return out;
}

/** The object on black (IN-9 only_fg). */
export function onlyForeground(image: RGBImage, mask: Mask): RGBImage {
  const out = cloneImage(image);
  for (let i = 0; i < mask.data.length; i++) if (!mask.data[i]) out.data.fill(0, i * 3, i * 3 + 3);
  return out;
}

export function encodeJpeg(img: RGBImage, quality = 95): Promise<Buffer> {
  // 4:4:4 keeps chroma from bleeding across the object edge, so IN-9's no_fg diff recovers the mask cleanly
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).jpeg({ quality, chromaSubsampling: '4:4:4' }).toBuffer();
}

/** 8-bit greyscale PNG, 255 on the object (CUB segmentation style). */
export function encodeMaskPng(mask: Mask): Promise<Buffer> {
  const grey = new Uint8Array(mask.data.length);
  for (let i = 0; i < grey.length; i++) grey[i] = mask.data[i] ? 255 : 0;
  return sharp(grey, { raw: { width: mask.width, height: mask.height, channels: 1 } }).png().toBuffer();
}

/** NumPy .npy v1.0, dtype bool, shape (H, W), C order: what numpy.save writes for a boolean mask. */
export function encodeNpyBool(mask: Mask): Uint8Array {
  let header = `{'descr': '|b1', 'fortran_order': False, 'shape': (${mask.height}, ${mask.width}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + mask.data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  for (let i = 0; i < mask.data.length; i++) out[10 + header.length + i] = mask.data[i] ? 1 : 0;
  return out;
}
