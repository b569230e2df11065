import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { ModelCard, ValueRange } from './card.ts';
import { dilateMask, resizeLinear, resizeLinearWindow, resizeMaskAny } from './resize.ts';

/**
 * The card-driven translation between our pixels (8-bit RGB HWC, 0/1 masks) and a model's tensors. Pure functions:
 * the runner only adds batching and the session.
 */

/** The size (H, W) at which the model sees an image of width×height. */
export function modelSizeFor(card: ModelCard, width: number, height: number): [number, number] {
  if ('fixed' in card.size) return card.size.fixed;
  const n = card.size.multipleOf;
  return [Math.max(n, Math.ceil(height / n) * n), Math.max(n, Math.ceil(width / n) * n)];
}

/** Where a hole is: its bounding box [x0, x1) × [y0, y1), its pixel count, and whether it fills that box. */
export interface HoleExtent {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  count: number;
  /** true for a rectangle (every CF box hole): resizing and pasting can skip per-pixel tests */
  rect: boolean;
}

export function holeExtent(hole: Mask): HoleExtent {
  const { width: w, height: h, data } = hole;
  let x0 = w, y0 = h, x1 = 0, y1 = 0, count = 0;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let first = -1, last = -1;
    for (let x = 0; x < w; x++) {
      if (!data[row + x]) continue;
      if (first < 0) first = x;
      last = x;
      count++;
    }
    if (first < 0) continue;
    if (first < x0) x0 = first;
    if (last + 1 > x1) x1 = last + 1;
    if (y < y0) y0 = y;
    y1 = y + 1;
  }
  if (!count) return { x0: 0, y0: 0, x1: 0, y1: 0, count: 0, rect: false };
  return { x0, y0, x1, y1, count, rect: count === (x1 - x0) * (y1 - y0) };
}

/** One image prepared at model resolution: RGB floats in 0..255 (HWC) and the 0/1 hole the model is told about. */
export interface PreparedItem {
  H: number;
  W: number;
  rgb: Float32Array;
  hole: Uint8Array;
}

export function prepareItem(card: ModelCard, image: RGBImage, hole: Mask, extent: HoleExtent = holeExtent(hole)): PreparedItem {
  if (hole.width !== image.width || hole.height !== image.height) {
    throw new Error(`hole mask is ${hole.width}×${hole.height} but the image is ${image.width}×${image.height}`);
  }
  const [H, W] = modelSizeFor(card, image.width, image.height);
  const rgb = resizeLinear(image.data, image.width, image.height, 3, W, H);
  let m: Uint8Array;
  if (extent.rect && (W !== image.width || H !== image.height)) {
    // A rectangle stays a rectangle: the model pixels any part of it overlaps (what resizeMaskAny computes).
    m = new Uint8Array(W * H);
    const mx0 = Math.floor((extent.x0 * W) / image.width), mx1 = Math.max(mx0 + 1, Math.ceil((extent.x1 * W) / image.width));
    const my0 = Math.floor((extent.y0 * H) / image.height), my1 = Math.max(my0 + 1, Math.ceil((extent.y1 * H) / image.height));
    for (let y = my0; y < my1; y++) m.fill(1, y * W + mx0, y * W + mx1);
  } else {
    m = resizeMaskAny(hole.data, hole.width, hole.height, W, H);
  }
  if (card.mask.dilate > 0) m = dilateMask(m, W, H, card.mask.dilate);
  return { H, W, rgb, hole: m };
}

/** 0..255 → the card's range, and back. */
export function toRange(v255: number, r: ValueRange): number {
  return r[0] + (v255 / 255) * (r[1] - r[0]);
}
export function fromRange(v: number, r: ValueRange): number {
  return ((v - r[0]) / (r[1] - r[0])) * 255;
}

/** Channel index in the model's order of our RGB channel c (input side, and output side). */
const chan = (card: ModelCard, c: number): number => (card.channelOrder === 'BGR' ? 2 - c : c);
const outChan = (card: ModelCard, c: number): number => ((card.output.channelOrder ?? card.channelOrder) === 'BGR' ? 2 - c : c);

export interface ModelFeeds {
  /** tensor name → [data, dims] */
  [name: string]: { data: Float32Array; dims: number[] };
}

/**
 * Build the model inputs for a batch of prepared items (all the same model size). The hole's pixels are erased to
 * the model's zero before feeding: a model that forgets to mask its input must not copy the object back into the
 * counterfactual.
 */
export function packBatch(card: ModelCard, items: readonly PreparedItem[]): ModelFeeds {
  const B = items.length;
  const { H, W } = items[0];
  for (const it of items) if (it.H !== H || it.W !== W) throw new Error('packBatch: items of one batch must share the model size');
  const r = card.valueRange;
  const hv = card.mask.holeValue;
  // The value a multiply-by-(1 − mask) leaves in the hole: zero in the model's own units.
  const erased = 0;
  if (card.layout === 'side-by-side-nhwc') {
    const W2 = 2 * W;
    const data = new Float32Array(B * H * W2 * 3);
    items.forEach((it, b) => {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const p = y * W + x;
          const inHole = it.hole[p] === 1;
          const left = ((b * H + y) * W2 + x) * 3;
          const right = left + W * 3;
          for (let c = 0; c < 3; c++) {
            data[left + chan(card, c)] = inHole ? erased : toRange(it.rgb[p * 3 + c], r);
            data[right + c] = inHole ? hv : 0;
          }
        }
      }
    });
    return { [card.inputs.image]: { data, dims: [B, H, W2, 3] } };
  }
  const plane = H * W;
  const image = new Float32Array(B * 3 * plane);
  const mask = new Float32Array(B * plane);
  items.forEach((it, b) => {
    for (let p = 0; p < plane; p++) {
      const inHole = it.hole[p] === 1;
      mask[b * plane + p] = inHole ? hv : 0;
      for (let c = 0; c < 3; c++) image[(b * 3 + chan(card, c)) * plane + p] = inHole ? erased : toRange(it.rgb[p * 3 + c], r);
    }
  });
  return {
    [card.inputs.image]: { data: image, dims: [B, 3, H, W] },
    [card.inputs.mask!]: { data: mask, dims: [B, 1, H, W] },
  };
}

/**
 * Read item b of the model output as RGB HWC floats in 0..255 (clipped). `dims` is the output tensor's shape,
 * checked against the card so a model that answers in another layout fails loudly instead of scrambling pixels.
 */
export function unpackItem(card: ModelCard, out: ArrayLike<number>, dims: readonly number[], b: number, H: number, W: number): Float32Array {
  const want = card.output.layout === 'nhwc' ? [H, W, 3] : [3, H, W];
  if (dims.length !== 4 || dims[1] !== want[0] || dims[2] !== want[1] || dims[3] !== want[2]) {
    throw new Error(`model output "${card.output.name}" has shape [${dims.join(', ')}], card says ${card.output.layout} [B, ${want.join(', ')}]`);
  }
  const r = card.outputRange;
  const plane = H * W;
  const res = new Float32Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const mc = outChan(card, c);
      const v = card.output.layout === 'nhwc' ? out[(b * plane + p) * 3 + mc] : out[(b * 3 + mc) * plane + p];
      const v255 = fromRange(v, r);
      res[p * 3 + c] = v255 < 0 ? 0 : v255 > 255 ? 255 : v255;
    }
  }
  return res;
}

/**
 * Bring a generated model-size image back to the source size and paste it into the hole only:
 * x·(1 − r) + gen·r with r the source-resolution hole. Outside the hole the result is the source, byte for byte.
 */
export function compositeBack(source: RGBImage, hole: Mask, gen: Float32Array, H: number, W: number, extent: HoleExtent = holeExtent(hole)): RGBImage {
  const { width: w, height: h } = source;
  const { x0, y0, x1, y1, rect } = extent;
  const data = source.data.slice();
  if (!extent.count) return { width: w, height: h, data };
  // Only the hole's bounding box is resized back: every other generated pixel would be thrown away.
  const full = W === w && H === h ? gen : resizeLinearWindow(gen, W, H, 3, w, h, { x0, y0, x1, y1 });
  for (let y = y0; y < y1; y++) for (let p = y * w + x0; p < y * w + x1; p++) {
    if (!rect && !hole.data[p]) continue;
    for (let c = 0; c < 3; c++) {
      const v = Math.round(full[p * 3 + c]);
      data[p * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width: w, height: h, data };
}
