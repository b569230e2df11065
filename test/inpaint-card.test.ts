import { describe, expect, it } from 'vitest';
import { UserError } from '../manifests/errors.ts';
import { checkCardAgainstModel, parseCard, type ModelCard } from '../pipeline/inpaint/card.ts';
import { dilateMask, resizeLinear, resizeLinearWindow, resizeMaskAny } from '../pipeline/inpaint/resize.ts';
import { compositeBack, holeExtent, modelSizeFor, packBatch, prepareItem, unpackItem } from '../pipeline/inpaint/tensors.ts';
import { rngFor } from '../manifests/rng.ts';

const deepfill = {
  name: 'deepfill-v1-imagenet256', file: 'deepfill.onnx', layout: 'side-by-side-nhwc', inputs: { image: 'Placeholder:0' },
  output: { name: 'saturate_cast:0', layout: 'nhwc' }, valueRange: [0, 255], outputRange: [0, 255], channelOrder: 'BGR',
  mask: { holeValue: 255, dilate: 0 }, size: { fixed: [256, 256] }, licence: 'CC BY-NC 4.0', provenance: 'test',
};
const lama = {
  name: 'lama', file: 'lama.onnx', layout: 'separate-nchw', inputs: { image: 'image', mask: 'mask' }, output: { name: 'output', layout: 'nchw' },
  valueRange: [0, 1], outputRange: [0, 255], channelOrder: 'RGB', mask: { holeValue: 1, dilate: 2 }, size: { multipleOf: 8 },
  licence: 'Apache-2.0', provenance: 'test',
};

describe('parseCard', () => {
  it('accepts both layouts and returns exactly the card', () => {
    expect(parseCard(deepfill, 'x.card.json')).toEqual(deepfill);
    expect(parseCard(lama, 'x.card.json')).toEqual(lama);
  });

  const bad: [string, unknown, RegExp][] = [
    ['not an object', [1], /must be a JSON object/],
    ['a missing field', { ...lama, licence: undefined }, /missing field "licence"/],
    ['an unknown top-level field', { ...lama, extra: 1 }, /unknown field "extra"/],
    ['an unknown layout', { ...lama, layout: 'nhwc' }, /"layout" must be one of/],
    ['a separate layout without a mask input', { ...lama, inputs: { image: 'image' } }, /needs "inputs.mask"/],
    ['a side-by-side layout with a mask input', { ...deepfill, inputs: { image: 'a', mask: 'b' } }, /unknown field "inputs.mask"/],
    ['the same tensor for image and mask', { ...lama, inputs: { image: 'x', mask: 'x' } }, /name the same tensor/],
    ['an unknown value range', { ...lama, valueRange: [0, 2] }, /"valueRange" must be one of \[0,255\], \[0,1\], \[-1,1\]/],
    ['an unknown channel order', { ...lama, channelOrder: 'rgb' }, /"channelOrder" must be one of RGB \| BGR/],
    ['a zero hole value', { ...lama, mask: { holeValue: 0, dilate: 0 } }, /"mask.holeValue" must be a nonzero number/],
    ['a negative dilation', { ...lama, mask: { holeValue: 1, dilate: -1 } }, /"mask.dilate" must be an integer >= 0/],
    ['a size with neither form', { ...lama, size: { any: true } }, /"size" must be/],
    ['a fixed size that is not [H, W]', { ...lama, size: { fixed: [256] } }, /"size.fixed" must be \[H, W\]/],
    ['a bad output layout', { ...lama, output: { name: 'o', layout: 'hwc' } }, /"output.layout" must be one of nhwc \| nchw/],
    ['a bad output channel order', { ...lama, output: { name: 'o', layout: 'nchw', channelOrder: 'rgb' } }, /"output.channelOrder" must be one of RGB \| BGR/],
  ];
  for (const [what, json, re] of bad) {
    it(`rejects ${what} with a UserError naming the card`, () => {
      let err: unknown = null;
      try { parseCard(json, '/models/x.card.json'); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toMatch(/^\/models\/x\.card\.json: invalid model card: /);
      expect((err as Error).message).toMatch(re);
    });
  }
});

describe('checkCardAgainstModel', () => {
  const card = parseCard(lama, 'c.json');
  const t = (name: string, shape: (number | string)[]) => ({ name, isTensor: true, type: 'float32', shape });
  it('accepts matching symbolic and fixed shapes', () => {
    expect(() => checkCardAgainstModel(card, 'c.json', [t('image', ['B', 3, 'H', 'W']), t('mask', [1, 1, 64, 64])], [t('output', ['B', 3, 'H', 'W'])])).not.toThrow();
  });
  it('rejects a wrong rank, a wrong channel count, a wrong type and an extra input', () => {
    expect(() => checkCardAgainstModel(card, 'c.json', [t('image', ['B', 'H', 'W', 3]), t('mask', [1, 1, 8, 8])], [t('output', [1, 3, 8, 8])]))
      .toThrow(/"image" has shape \["B","H","W",3\], but layout separate-nchw image \[B, 3, H, W\] needs/);
    expect(() => checkCardAgainstModel(card, 'c.json', [t('image', [1, 3, 8]), t('mask', [1, 1, 8, 8])], [t('output', [1, 3, 8, 8])]))
      .toThrow(/rank 3/);
    expect(() => checkCardAgainstModel(card, 'c.json', [{ ...t('image', [1, 3, 8, 8]), type: 'uint8' }, t('mask', [1, 1, 8, 8])], [t('output', [1, 3, 8, 8])]))
      .toThrow(/element type uint8/);
    expect(() => checkCardAgainstModel(card, 'c.json', [t('image', [1, 3, 8, 8]), t('mask', [1, 1, 8, 8]), t('seed', [1])], [t('output', [1, 3, 8, 8])]))
      .toThrow(/input "seed" the card does not feed/);
  });
  it('accepts a uint8 output but only float32 inputs; refuses inputs with different fixed batch sizes', () => {
    const ok = () => checkCardAgainstModel(card, 'c.json', [t('image', [1, 3, 8, 8]), t('mask', [1, 1, 8, 8])], [{ ...t('output', [1, 3, 8, 8]), type: 'uint8' }]);
    expect(ok).not.toThrow();
    expect(() => checkCardAgainstModel(card, 'c.json', [t('image', [1, 3, 8, 8]), t('mask', [2, 1, 8, 8])], [t('output', [1, 3, 8, 8])]))
      .toThrow(/different fixed batch sizes \(1, 2\)/);
  });
  it('checks a fixed size against the side-by-side width 2W', () => {
    const d = parseCard(deepfill, 'd.json');
    expect(() => checkCardAgainstModel(d, 'd.json', [t('Placeholder:0', [1, 256, 512, 3])], [t('saturate_cast:0', [1, 256, 256, 3])])).not.toThrow();
    expect(() => checkCardAgainstModel(d, 'd.json', [t('Placeholder:0', [1, 256, 256, 3])], [t('saturate_cast:0', [1, 256, 256, 3])])).toThrow(/needs \["\?",256,512,3\]/);
  });
});

describe('resizing', () => {
  it('keeps a constant image constant at any scale', () => {
    const src = new Uint8Array(13 * 7 * 3).fill(77);
    for (const [w, h] of [[4, 3], [26, 14], [13, 7], [100, 2]]) {
      const out = resizeLinear(src, 13, 7, 3, w, h);
      expect(out.length).toBe(w * h * 3);
      for (const v of out) expect(v).toBeCloseTo(77, 4);
    }
  });
  it('averages the covered source pixels when shrinking (area weights)', () => {
    // 1 row, 8 px → 4 px: output k is the mean of inputs 2k and 2k + 1.
    const src = [0, 8, 16, 24, 32, 40, 48, 56];
    expect(Array.from(resizeLinear(src, 8, 1, 1, 4, 1))).toEqual([4, 20, 36, 52]);
    // 5 px → 2 px: output 0 covers [0, 2.5): inputs 0, 1 and half of 2 → (0 + 10 + 0.5·20) / 2.5 = 8.
    const out = resizeLinear([0, 10, 20, 30, 40], 5, 1, 1, 2, 1);
    expect(out[0]).toBeCloseTo(8, 5);
    expect(out[1]).toBeCloseTo((0.5 * 20 + 30 + 40) / 2.5, 5);
  });
  it('interpolates linearly when enlarging by 2 (half-pixel centres)', () => {
    const out = resizeLinear([0, 100], 2, 1, 1, 4, 1);
    expect(Array.from(out)).toEqual([0, 25, 75, 100]);
  });
  it('never shrinks a mask: a source pixel partly covering an output pixel makes it hole', () => {
    const m = new Uint8Array(10 * 10);
    m[5 * 10 + 5] = 1; // one pixel
    const out = resizeMaskAny(m, 10, 10, 4, 4);
    // 10 → 4: output pixel k covers source [2.5k, 2.5k+2.5); source 5 lies in output 2 only.
    expect(Array.from(out)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    const up = resizeMaskAny(m, 10, 10, 20, 20);
    expect(up.reduce((a, b) => a + b, 0)).toBe(4);
  });
  it('a window of the resize equals the same pixels of the full resize', () => {
    const src = Float32Array.from({ length: 7 * 5 * 3 }, (_, i) => (i * 37) % 255);
    for (const [w, h] of [[16, 11], [3, 2], [7, 5]]) {
      const full = resizeLinear(src, 7, 5, 3, w, h);
      const win = { x0: 1, y0: 1, x1: w - 1, y1: h };
      const part = resizeLinearWindow(src, 7, 5, 3, w, h, win);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
        const i = (y * w + x) * 3 + c;
        const inside = x >= win.x0 && x < win.x1 && y >= win.y0 && y < win.y1;
        expect(part[i]).toBe(inside ? full[i] : 0);
      }
    }
  });
  it('dilates by r in the square neighbourhood', () => {
    const m = new Uint8Array(7 * 7);
    m[3 * 7 + 3] = 1;
    const d = dilateMask(m, 7, 7, 2);
    for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) expect(d[y * 7 + x]).toBe(Math.abs(x - 3) <= 2 && Math.abs(y - 3) <= 2 ? 1 : 0);
  });
});

describe('tensor packing', () => {
  const img = { width: 2, height: 1, data: Uint8Array.from([10, 20, 30, 40, 50, 60]) };
  const hole = { width: 2, height: 1, data: Uint8Array.from([0, 1]) };
  it('packs side-by-side NHWC BGR 0–255 with hole = 255 on the right, erasing the hole', () => {
    const card = parseCard({ ...deepfill, size: { fixed: [1, 2] } }, 'd') as ModelCard;
    const feeds = packBatch(card, [prepareItem(card, img, hole)]);
    expect(feeds['Placeholder:0'].dims).toEqual([1, 1, 4, 3]);
    expect(Array.from(feeds['Placeholder:0'].data)).toEqual([30, 20, 10, 0, 0, 0, 0, 0, 0, 255, 255, 255]);
  });
  it('packs separate NCHW RGB [0,1] planes and a [B,1,H,W] mask; multipleOf rounds the size up', () => {
    const card = parseCard({ ...lama, mask: { holeValue: 1, dilate: 0 }, size: { multipleOf: 2 } }, 'l') as ModelCard;
    expect(modelSizeFor(card, 3, 5)).toEqual([6, 4]);
    const feeds = packBatch(card, [prepareItem(card, img, hole)]);
    expect(feeds.image.dims).toEqual([1, 3, 2, 2]);
    // 2×1 → 2×2 (rows duplicated); the hole column is erased to 0.
    expect(Array.from(feeds.image.data).map((v) => Math.round(v * 255))).toEqual([10, 0, 10, 0, 20, 0, 20, 0, 30, 0, 30, 0]);
    expect(Array.from(feeds.mask.data)).toEqual([0, 1, 0, 1]);
  });
  it('unpacks [-1,1] NCHW BGR output into clipped 0–255 RGB and composites the hole only', () => {
    const card = parseCard({ ...lama, channelOrder: 'BGR', outputRange: [-1, 1] }, 'l') as ModelCard;
    // B=1, C=3, H=1, W=2; model channel 0 is blue.
    const out = Float32Array.from([1, 0, -1, -1, 0.5, 2]);
    const gen = unpackItem(card, out, [1, 3, 1, 2], 0, 1, 2);
    // pixel 0: B=1, G=−1, R=0.5 → RGB (191.25, 0, 255); pixel 1: B=0, G=−1, R=2 (clipped) → (255, 0, 127.5).
    expect(Array.from(gen)).toEqual([191.25, 0, 255, 255, 0, 127.5]);
    const res = compositeBack(img, hole, gen, 1, 2);
    expect(Array.from(res.data)).toEqual([10, 20, 30, 255, 0, 128]);
    expect(() => unpackItem(card, out, [1, 1, 2, 3], 0, 1, 2)).toThrow(/card says nchw/);
  });
  it('the rectangle fast path gives exactly the any-overlap mask resize', () => {
    const rng = rngFor('rect-fast-path');
    const [w, h] = [37, 23];
    const img = { width: w, height: h, data: new Uint8Array(w * h * 3) };
    for (const size of [{ fixed: [16, 16] }, { fixed: [48, 64] }, { multipleOf: 8 }, { fixed: [7, 5] }]) {
      const card = parseCard({ ...lama, mask: { holeValue: 1, dilate: 0 }, size }, 'l') as ModelCard;
      const [H, W] = modelSizeFor(card, w, h);
      for (let t = 0; t < 40; t++) {
        const x0 = rng.int(w), y0 = rng.int(h);
        const x1 = x0 + 1 + rng.int(w - x0), y1 = y0 + 1 + rng.int(h - y0);
        const hole = { width: w, height: h, data: new Uint8Array(w * h) };
        for (let y = y0; y < y1; y++) hole.data.fill(1, y * w + x0, y * w + x1);
        expect(holeExtent(hole)).toEqual({ x0, y0, x1, y1, count: (x1 - x0) * (y1 - y0), rect: true });
        expect(Array.from(prepareItem(card, img, hole).hole)).toEqual(Array.from(resizeMaskAny(hole.data, w, h, W, H)));
      }
    }
    const notRect = { width: 4, height: 3, data: Uint8Array.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) };
    expect(holeExtent(notRect)).toEqual({ x0: 1, y0: 0, x1: 3, y1: 2, count: 3, rect: false });
  });
  it('composites a resized generation into the hole only, as a full resize would', () => {
    const src = { width: 9, height: 7, data: Uint8Array.from({ length: 9 * 7 * 3 }, (_, i) => (i * 11) % 256) };
    const hole = { width: 9, height: 7, data: new Uint8Array(63) };
    for (const p of [10, 11, 20, 29, 40]) hole.data[p] = 1;
    const gen = Float32Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 53) % 256);
    const res = compositeBack(src, hole, gen, 4, 4);
    const full = resizeLinear(gen, 4, 4, 3, 9, 7);
    for (let p = 0; p < 63; p++) for (let c = 0; c < 3; c++) {
      expect(res.data[p * 3 + c]).toBe(hole.data[p] ? Math.min(255, Math.max(0, Math.round(full[p * 3 + c]))) : src.data[p * 3 + c]);
    }
  });
});
