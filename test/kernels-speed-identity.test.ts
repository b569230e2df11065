import { createHash, type Hash } from 'node:crypto';
import { beforeEach, describe, it, expect } from 'vitest';
import { release, takeBytes } from '../pipeline/pixel-pool.ts';
import { rngFor, type Rng } from '../manifests/rng.ts';
import { newImage, newMask, type Box, type Mask, type RGBImage } from '../manifests/pixels.ts';
import { boundingBoxOfMask } from '../manifests/masks.ts';
import { invertMask, maskArea } from '../pipeline/masks-ops.ts';
import { randomInfill } from '../pipeline/infills/random.ts';
import { shuffleInfill, type ShuffleScope } from '../pipeline/infills/shuffle.ts';
import { largestBackgroundStrip, largestEmptyRectangle, tileFromRectangle, tileInfill } from '../pipeline/infills/tile.ts';
import { mixedRandInfill } from '../pipeline/infills/mixed-rand.ts';
import { FastStream } from '../pipeline/infills/fast-stream.ts';
import { quantizedNormal, sampleQuantized } from '../pipeline/infills/quantized-normal.ts';
import type { Donor } from '../pipeline/infills/types.ts';

/**
 * Bit-identity of the per-image kernels. Every generated image's bytes feed published corpus ids, so a speed-up
 * of these kernels must not change one output byte (nor how much of the item rng they consume). The golden
 * SHA-256 values below were computed with the kernels as they were before they were optimized; each covers one
 * kernel and setting over every image size, mask and seed below. Do not regenerate them to make a change pass.
 */

const SIZES: [number, number][] = [[1, 1], [5, 3], [37, 23], [64, 48], [224, 224]];
const SEEDS = ['a', 'b', 'c'];

const imageCache = new Map<string, RGBImage>();
function noiseImage(w: number, h: number, salt: string): RGBImage {
  const key = `${w}x${h}/${salt}`;
  const hit = imageCache.get(key);
  if (hit) return hit;
  const rng = rngFor('kernels-speed-image', salt, w, h);
  const img = newImage(w, h);
  for (let i = 0; i < img.data.length; i++) img.data[i] = rng.int(256);
  imageCache.set(key, img);
  return img;
}

function maskFrom(w: number, h: number, on: (x: number, y: number, i: number) => number): Mask {
  const m = newMask(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m.data[y * w + x] = on(x, y, y * w + x);
  return m;
}

/** The same mask with its bytes at an unaligned offset of a larger buffer (word-at-a-time code must cope). */
function shifted(m: Mask, offset: number): Mask {
  const buf = new Uint8Array(m.data.length + offset + 3).fill(1);
  const data = buf.subarray(offset, offset + m.data.length);
  data.set(m.data);
  return { width: m.width, height: m.height, data };
}

/** Named masks of a size: the shapes the pipeline makes plus edge cases (one pixel, first/last pixel, not-0/1 bytes). */
const maskCache = new Map<string, [string, Mask][]>();
function masks(w: number, h: number): [string, Mask][] {
  const hit = maskCache.get(`${w}x${h}`);
  if (hit) return hit;
  const cx = (w - 1) / 2, cy = (h - 1) / 2, rx = Math.max(0.5, w * 0.31), ry = Math.max(0.5, h * 0.31);
  const ellipse = maskFrom(w, h, (x, y) => (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1 ? 1 : 0));
  const bx = Math.floor(w / 5), by = Math.floor(h / 4), bw = Math.max(1, Math.floor(w / 2)), bh = Math.max(1, Math.floor(h / 3));
  const rect = maskFrom(w, h, (x, y) => (x >= bx && x < bx + bw && y >= by && y < by + bh ? 1 : 0));
  const speckleRng = rngFor('kernels-speed-speckle', w, h);
  const speckle = maskFrom(w, h, () => (speckleRng.next() < 0.3 ? 1 : 0));
  const bytesRng = rngFor('kernels-speed-bytes', w, h);
  const anyBytes = maskFrom(w, h, () => (bytesRng.next() < 0.5 ? 0 : 1 + bytesRng.int(255)));
  const list: [string, Mask][] = [
    ['empty', newMask(w, h)],
    ['full', maskFrom(w, h, () => 1)],
    ['rect', rect],
    ['rect-inv', maskFrom(w, h, (_x, _y, i) => 1 - rect.data[i])],
    ['rect-corner', maskFrom(w, h, (x, y) => (x >= w - bw && y >= h - bh ? 1 : 0))],
    ['ellipse', ellipse],
    ['ellipse-inv', maskFrom(w, h, (_x, _y, i) => 1 - ellipse.data[i])],
    ['speckle', speckle],
    ['single', maskFrom(w, h, (x, y) => (x === Math.floor(w / 2) && y === Math.floor(h / 2) ? 1 : 0))],
    ['first', maskFrom(w, h, (_x, _y, i) => (i === 0 ? 1 : 0))],
    ['last', maskFrom(w, h, (_x, _y, i) => (i === w * h - 1 ? 1 : 0))],
    ['stripes', maskFrom(w, h, (x, y) => ((x >> 2) % 2 === 0 && y % 3 !== 1 ? 1 : 0))],
    // full-width rows: one run that wraps from row to row (a rectangle all the same)
    ['band', maskFrom(w, h, (_x, y) => (y >= Math.floor(h / 3) && y < Math.max(1, Math.floor((2 * h) / 3)) ? 1 : 0))],
    ['columns', maskFrom(w, h, (x) => (x >= Math.floor(w / 4) && x < Math.max(1, Math.floor(w / 2)) ? 1 : 0))],
    ['two-rects', maskFrom(w, h, (x, y) => ((x < w / 3 && y < h / 3) || (x >= (2 * w) / 3 && y >= (2 * h) / 3) ? 1 : 0))],
    ['any-bytes', anyBytes],
    ['ellipse-255', maskFrom(w, h, (_x, _y, i) => ellipse.data[i] * 255)],
  ];
  for (const o of [1, 2, 3]) list.push([`ellipse+${o}`, shifted(ellipse, o)], [`speckle+${o}`, shifted(speckle, o)]);
  list.push(['any-bytes+1', shifted(anyBytes, 1)]);
  // set bytes past the last row: no pixels, but kernels that walk the whole array must still agree
  const trailing = new Uint8Array(w * h + 6).fill(1);
  trailing.set(ellipse.data);
  list.push(['ellipse+trailing', { width: w, height: h, data: trailing }]);
  maskCache.set(`${w}x${h}`, list);
  return list;
}

/** Hash one kernel's outputs over every size × mask × seed; `run` feeds the hash (output bytes and what else it must pin). */
function digest(run: (hash: Hash, img: RGBImage, mask: Mask, rng: Rng, w: number, h: number, name: string) => void): string {
  const h = createHash('sha256');
  for (const [w, hh] of SIZES) {
    const img = noiseImage(w, hh, 'main');
    for (const [name, mask] of masks(w, hh)) {
      for (const seed of SEEDS) {
        h.update(`${w}x${hh}/${name}/${seed}:`);
        const before = img.data.slice();
        const maskBefore = mask.data.slice();
        run(h, img, mask, rngFor('kernels-speed', seed, w, hh, name), w, hh, name);
        // kernels never write their inputs
        if (Buffer.compare(before, img.data) !== 0 || Buffer.compare(maskBefore, mask.data) !== 0) throw new Error(`${name}: input modified`);
      }
    }
  }
  return h.digest('hex');
}

/** Whatever the kernel left of the item rng: the next draws pin how many it consumed. */
function tail(h: Hash, rng: Rng): void {
  h.update(Float64Array.of(rng.next(), rng.next(), rng.next()));
}

const boxText = (b: Box | null): string => (b ? `${b.x},${b.y},${b.w},${b.h}` : 'null');

const GOLDEN: Record<string, string> = {
  "invertMask": '0e748483ca8b935ad8ca9a1ce415212c54893566bdae194fcd02f68cb9c342cc',
  "maskArea": 'd1dff278059665e1b589d16f096709d3ac8b62d48ba3d4bdc273b384e88dd062',
  "boundingBoxOfMask": '68435e3f1b9f0ef5920a64d8a190e3e70a4b55ce07dac651cbb22a3d8b395e89',
  "random 1x1 0": '31f02c22feeee1ed803e673bb6dd17081d2ed7ce294f9195d12117940db42037',
  "random 1x1 0.02": 'e6b2612361346fbf8b7be8387ccbe315a733d98c9f4ab7e8e2cf08956d4744b7',
  "random 1x1 0.1": 'a929251032d38d2ccf67584d3564474cc626295b294a2ec6be5c72ff49f6a1f2',
  "random 1x1 0.5": '30366e56c791860024665e03f0311aa8298f1b4328a29e7fa71a63382d21114e',
  "random 3x4 0": 'ce3bebc915ba642bed8222df97901c7653e11f8e1d6c101151fc82f28c12fd32',
  "random 3x4 0.02": 'bd5bd12a48dcbef4eaaea9ef1524fba33b58609b956bf6e9564fd7fc26a0d96f',
  "random 3x4 0.1": 'd1ea680cc1abfcf4bb60d0f14d296ff0f1e96db60631d1ed677638ef2eb31da0',
  "random 3x4 0.5": '22cc6bf702fc4abafd696c7eda40e849c5c2248c37022daa4f51ee7c0b56ef60',
  "shuffle region": '00b67f5b64d3eaaf1b8eec7c8c2ce589f6a01d0676e2913edea35f902b55b479',
  "shuffle image": 'fc61ca0ac71e0afa1813a127e685420df396ec6021fcad45d05ce1a1dfe86222',
  "shuffle batch": 'd3cfff1ca62b2bc5d24dc0cb9b60d317fcf5f8661094f964e0d74c98a86dfa6d',
  "largestEmptyRectangle": 'c9f317421cf2fb43fdc1bb2d79c807e8e380d4ca51f7580e853001e60cb089ce',
  "largestBackgroundStrip": 'de18282dd9f829ed82e27bc194ba3869206797cc493d562472ed072978007536',
  "tileInfill maxrect": 'de39ffcd457ae5ba36aeb5d4c30664ab5da00d0499ac3d56ae1b642032597149',
  "tileInfill strip": 'b891a1058adbbd9b602cbb39e791bc4cebfb5ec7d47030afea10175c2fa6eee4',
  "tileFromRectangle": '7743d9e8da34c4a0cbc838a3151fb6efbd72fab46439fa69a55f0f19c9aae9de',
  "mixedRand maxrect": '91a02932e761ca1bdc2740fbb957665ece7903050e1843049b4fc35939c34838',
  "mixedRand strip": 'dee92fdc2e2cfe4be0633d352aa1b4a5577fa3589097485c547c38b1647314a1',
  "FastStream": '47813ff1e91cb6290ed5f199fc96072f7e9b19758d7aef432eb40f6ba953dc6c',
};

/** Fill the pool with buffers of every size class the kernels use, each full of garbage. */
function poisonPool(): void {
  const held: Uint8Array[] = [];
  for (let bytes = 1; bytes <= 256 * 1024; bytes += 16 * 1024) for (let k = 0; k < 4; k++) held.push(takeBytes(bytes).fill(0xa5));
  release(...held);
}

function check(name: string, actual: string): void {
  expect.soft(actual, name).toBe(GOLDEN[name]);
}

/**
 * The kernels' outputs and scratch come from pipeline/pixel-pool.ts. Run with 'recycled' buffers, every output goes
 * back to the pool once hashed and the pool starts out full of garbage bytes, as in a long generate run: a kernel
 * that read a byte of a reused buffer before writing it would change a digest.
 */
for (const buffers of ['fresh', 'recycled'] as const) {
describe(`kernel outputs are bit-identical to the pre-optimization goldens (${buffers} buffers)`, () => {
  const emit = (h: Hash, data: Uint8Array): void => { h.update(data); if (buffers === 'recycled') release(data); };
  beforeEach(() => { if (buffers === 'recycled') poisonPool(); });

  it('mask ops: invertMask, maskArea, boundingBoxOfMask', () => {
    check('invertMask', digest((h, _img, m) => { const o = invertMask(m); h.update(`${o.width}x${o.height}`); emit(h, o.data); }));
    check('maskArea', digest((h, _img, m) => h.update(String(maskArea(m)))));
    check('boundingBoxOfMask', digest((h, _img, m) => h.update(boxText(boundingBoxOfMask(m)))));
  });

  for (const grid of [[1, 1], [3, 4]] as [number, number][]) {
    for (const sigma of [0, 0.02, 0.1, 0.5]) {
      it(`randomInfill grid ${grid.join('x')} sigma ${sigma}`, () => {
        check(`random ${grid.join('x')} ${sigma}`, digest((h, img, m, rng) => {
          emit(h, randomInfill(img, m, rng, { grid, sigma }).data);
          tail(h, rng);
        }));
      });
    }
  }

  for (const scope of ['region', 'image', 'batch'] as ShuffleScope[]) {
    it(`shuffleInfill ${scope}`, () => {
      check(`shuffle ${scope}`, digest((h, img, m, rng, w, hh) => {
        const pool = scope === 'batch' ? [noiseImage(w, hh, 'pool1'), noiseImage(w, hh, 'pool2')] : [];
        emit(h, shuffleInfill(img, m, rng, scope, pool).data);
        tail(h, rng);
      }));
    });
  }

  it('tile: largestEmptyRectangle, largestBackgroundStrip, tileInfill, tileFromRectangle', () => {
    check('largestEmptyRectangle', digest((h, _img, m) => h.update(boxText(largestEmptyRectangle(m)))));
    check('largestBackgroundStrip', digest((h, _img, m) => h.update(boxText(largestBackgroundStrip(m)))));
    for (const mode of ['maxrect', 'strip'] as const) {
      check(`tileInfill ${mode}`, digest((h, img, m) => {
        const r = tileInfill(img, m, mode);
        h.update(r.status === 'ok' ? `${boxText(r.source)}` : r.reason);
        if (r.status === 'ok') emit(h, r.image.data);
      }));
    }
    check('tileFromRectangle', digest((h, img, m, _rng, w, hh) => {
      const boxes: Box[] = [
        { x: 0, y: 0, w: 1, h: 1 },
        { x: w - 1, y: hh - 1, w: 1, h: 1 },
        { x: 0, y: 0, w, h: hh },
        { x: Math.floor(w / 3), y: Math.floor(hh / 2), w: Math.max(1, Math.floor(w / 4)), h: Math.max(1, Math.floor(hh / 5)) },
        { x: 1 % w, y: 0, w: Math.max(1, w - 2), h: 1 },
        { x: 0, y: 1 % hh, w: 1, h: Math.max(1, hh - 1) },
        { x: w > 3 ? 3 : 0, y: 0, w: Math.max(1, Math.min(7, w - 3)), h: Math.max(1, Math.min(5, hh)) },
      ];
      for (const b of boxes) emit(h, tileFromRectangle(img, m, b).data);
    }));
  });

  for (const mode of ['maxrect', 'strip'] as const) {
    it(`mixedRandInfill ${mode}`, () => {
      check(`mixedRand ${mode}`, digest((h, img, m, _rng, w, hh, name) => {
        const all = masks(w, hh);
        const boxOf = (n: string) => all.find(([k]) => k === n)![1];
        const donor = (id: string, label: number, box: Mask): Donor => ({ sourceId: id, label, image: noiseImage(w, hh, id), box });
        // a same-class donor, a donor with no background to tile, then usable ones; the box is varied by mask name
        const usable = ['rect', 'rect-corner', 'single', 'band'][name.length % 4];
        const donors = [donor('same', 1, boxOf('rect')), donor('full', 2, boxOf('full')), donor('d1', 3, boxOf(usable)), donor('d2', 4, boxOf('ellipse'))];
        const r = mixedRandInfill(img, m, 1, donors, mode);
        h.update(r.status === 'ok' ? r.donor : r.reason);
        if (r.status === 'ok') emit(h, r.image.data);
        const none = mixedRandInfill(img, m, 1, donors.slice(0, 2), mode);
        h.update(none.status === 'ok' ? none.donor : none.reason);
        if (none.status === 'ok') emit(h, none.image.data);
      }));
    });
  }
});
}

describe('other kernels are bit-identical to the pre-optimization goldens', () => {
  it('FastStream and quantizedNormal sampling', () => {
    const h = createHash('sha256');
    for (const seed of SEEDS) {
      const s = new FastStream(rngFor('kernels-speed-stream', seed));
      const out = new Float64Array(4000);
      for (let i = 0; i < 1000; i++) { out[4 * i] = s.u32(); out[4 * i + 1] = s.uniform(); out[4 * i + 2] = s.int(1000 + i * 997); out[4 * i + 3] = s.normal(); }
      h.update(out);
      for (const [f, sigma] of [[0, 0], [0.5, 0], [0.3, 0.01], [0.7, 0.1], [0.02, 0.3], [1, 2]]) {
        const q = quantizedNormal(f, sigma);
        const v = new Uint8Array(5000);
        for (let i = 0; i < v.length; i++) v[i] = sampleQuantized(q, s);
        h.update(v);
      }
      h.update(Float64Array.of(s.u32(), s.normal()));
    }
    check('FastStream', h.digest('hex'));
  });
});
