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

/** One image prepared at model resolution: RGB floats in 0..255 (HWC) and the 0/1 hole the model is told about. */
export interface PreparedItem {
  H: number;
  W: number;
  rgb: Float32Array;
  hole: Uint8Array;
}

export function prepareItem(card: ModelCard, image: RGBImage, hole: Mask): PreparedItem {
  if (hole.width !== image.width || hole.height !== image.height) {
    throw new Error(`hole mask is ${hole.width}×${hole.height} but the image is ${image.width}×${image.height}`);
  }
  const [H, W] = modelSizeFor(card, image.width, image.height);
  const rgb = resizeLinear(image.data, image.width, image.height, 3, W, H);
  let m = resizeMaskAny(hole.data, hole.width, hole.height, W, H);
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
export function compositeBack(source: RGBImage, hole: Mask, gen: Float32Array, H: number, W: number): RGBImage {
  const { width: w, height: h } = source;
  // Only the hole's bounding box is resized back: every other generated pixel would be thrown away.
  let x0 = w, y0 = h, x1 = 0, y1 = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!hole.data[y * w + x]) continue;
      if (x < x0) x0 = x;
      if (x >= x1) x1 = x + 1;
      if (y < y0) y0 = y;
      y1 = y + 1;
    }
  }
  const data = source.data.slice();
  if (x1 <= x0) return { width: w, height: h, data };
  const full = W === w && H === h ? gen : resizeLinearWindow(gen, W, H, 3, w, h, { x0, y0, x1, y1 });
  for (let y = y0; y < y1; y++) for (let p = y * w + x0; p < y * w + x1; p++) {
    if (!hole.data[p]) continue;
    for (let c = 0; c < 3; c++) {
      const v = Math.round(full[p * 3 + c]);
      data[p * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width: w, height: h, data };
}
