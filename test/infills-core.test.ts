import { describe, it, expect } from 'vitest';
import { rngFor } from '../manifests/rng.ts';
import { newImage, newMask, type Mask, type RGBImage, type Box } from '../manifests/pixels.ts';
import {
  GREY_U8, greyInfill, randomInfill, shuffleInfill, tileInfill, largestEmptyRectangle, largestBackgroundStrip,
  mixedRandInfill, listInfills, getInfill, type Donor,
} from '../pipeline/infills/index.ts';
import { resizeMaskAnyOver, invertMask } from '../pipeline/masks-ops.ts';
import { FastStream } from '../pipeline/infills/fast-stream.ts';
import { normalCdf, quantizedNormal } from '../pipeline/infills/quantized-normal.ts';

/** An image whose every scalar is distinct-ish and position-coded, so a wrong source pixel shows. */
function codedImage(w: number, h: number, salt = 0): RGBImage {
  const img = newImage(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const p = (y * w + x) * 3;
    img.data[p] = (x * 17 + salt) & 255; img.data[p + 1] = (y * 29 + salt * 3) & 255; img.data[p + 2] = (x * 7 + y * 13 + salt * 5) & 255;
  }
  return img;
}

function noiseImage(w: number, h: number, seed: string): RGBImage {
  const rng = rngFor('test-image', seed);
  const img = newImage(w, h);
  for (let i = 0; i < img.data.length; i++) img.data[i] = rng.int(256);
  return img;
}

function maskFrom(w: number, h: number, on: (x: number, y: number) => boolean): Mask {
  const m = newMask(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m.data[y * w + x] = on(x, y) ? 1 : 0;
  return m;
}

const boxMask = (w: number, h: number, b: Box) => maskFrom(w, h, (x, y) => x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h);
const px = (img: RGBImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

function changedOutside(before: RGBImage, after: RGBImage, region: Mask): number {
  let n = 0;
  for (let i = 0; i < region.data.length; i++) {
    if (region.data[i]) continue;
    for (let c = 0; c < 3; c++) if (before.data[i * 3 + c] !== after.data[i * 3 + c]) n++;
  }
  return n;
}

describe('grey', () => {
  it('writes exactly 128 in the hole and nothing elsewhere', () => {
    const img = codedImage(9, 7);
    const hole = boxMask(9, 7, { x: 0, y: 0, w: 4, h: 3 });
    const out = greyInfill(img, hole);
    expect(GREY_U8).toBe(128);
    for (let y = 0; y < 7; y++) for (let x = 0; x < 9; x++) {
      expect(px(out, x, y)).toEqual(x < 4 && y < 3 ? [128, 128, 128] : px(img, x, y));
    }
    expect(img.data).toEqual(codedImage(9, 7).data); // input untouched
  });
});

describe('shuffle', () => {
  const img = noiseImage(20, 16, 'shuffle');
  const region = maskFrom(20, 16, (x, y) => (x - 8) ** 2 + (y - 7) ** 2 < 30);
  const regionPixels = (im: RGBImage) => {
    const out: string[] = [];
    for (let i = 0; i < region.data.length; i++) if (region.data[i]) out.push(Array.from(im.data.subarray(i * 3, i * 3 + 3)).join(','));
    return out;
  };
  const regionScalars = (im: RGBImage) => regionPixels(im).flatMap((s) => s.split(',').map(Number)).sort((a, b) => a - b);

  it('region scope keeps the multiset of RGB pixels and moves them', () => {
    const out = shuffleInfill(img, region, rngFor('s', 1), 'region');
    expect(regionPixels(out).slice().sort()).toEqual(regionPixels(img).slice().sort());
    expect(regionPixels(out)).not.toEqual(regionPixels(img));
    expect(changedOutside(img, out, region)).toBe(0);
  });

  it('image scope keeps the multiset of scalars but mixes channels', () => {
    const out = shuffleInfill(img, region, rngFor('s', 2), 'image');
    expect(regionScalars(out)).toEqual(regionScalars(img));
    // whole pixels are no longer preserved: most output triples were not input triples
    const before = new Set(regionPixels(img));
    expect(regionPixels(out).filter((p) => before.has(p)).length).toBeLessThan(regionPixels(img).length / 4);
    expect(changedOutside(img, out, region)).toBe(0);
  });

  it('batch scope draws the region from the pooled images', () => {
    const a = newImage(20, 16); a.data.fill(3);
    const b = newImage(20, 16); b.data.fill(250);
    const out = shuffleInfill(img, region, rngFor('s', 3), 'batch', [a, b]);
    const pool = new Map<number, number>();
    for (const im of [img, a, b]) for (const v of im.data) pool.set(v, (pool.get(v) ?? 0) + 1);
    const used = new Map<number, number>();
    for (const v of regionScalars(out)) used.set(v, (used.get(v) ?? 0) + 1);
    for (const [v, n] of used) expect(n).toBeLessThanOrEqual(pool.get(v) ?? 0);
    // two thirds of the pool is 3s and 250s: a fair draw puts plenty of both into the region
    expect(used.get(3) ?? 0).toBeGreaterThan(30);
    expect(used.get(250) ?? 0).toBeGreaterThan(30);
    expect(changedOutside(img, out, region)).toBe(0);
  });

  it('is reproducible from the rng key alone', () => {
    expect(shuffleInfill(img, region, rngFor('k', 9), 'region').data).toEqual(shuffleInfill(img, region, rngFor('k', 9), 'region').data);
    expect(shuffleInfill(img, region, rngFor('k', 9), 'region').data).not.toEqual(shuffleInfill(img, region, rngFor('k', 10), 'region').data);
  });
});

/** O(U^3) reference: the largest area over all all-zero rectangles. */
function bruteLargestArea(m: Mask): number {
  let best = 0;
  for (let y0 = 0; y0 < m.height; y0++) for (let x0 = 0; x0 < m.width; x0++) {
    let maxW = m.width - x0;
    for (let y1 = y0; y1 < m.height; y1++) {
      let w = 0;
      while (w < maxW && !m.data[y1 * m.width + x0 + w]) w++;
      maxW = w;
      if (!maxW) break;
      best = Math.max(best, maxW * (y1 - y0 + 1));
    }
  }
  return best;
}

function assertEmpty(m: Mask, b: Box): void {
  for (let y = b.y; y < b.y + b.h; y++) for (let x = b.x; x < b.x + b.w; x++) expect(m.data[y * m.width + x]).toBe(0);
}

describe('tile: source rectangle', () => {
  it('finds the largest background rectangle next to a box at x = 0', () => {
    const m = boxMask(10, 8, { x: 0, y: 2, w: 3, h: 4 });
    expect(largestEmptyRectangle(m)).toEqual({ x: 3, y: 0, w: 7, h: 8 });
  });

  it('finds the largest background rectangle below a box at y = 0', () => {
    const m = boxMask(10, 8, { x: 3, y: 0, w: 4, h: 3 });
    expect(largestEmptyRectangle(m)).toEqual({ x: 0, y: 3, w: 10, h: 5 });
  });

  it('handles a box in the corner (0, 0) and an interior rectangle', () => {
    expect(largestEmptyRectangle(boxMask(6, 6, { x: 0, y: 0, w: 3, h: 2 }))).toEqual({ x: 0, y: 2, w: 6, h: 4 });
    expect(largestEmptyRectangle(boxMask(6, 6, { x: 0, y: 0, w: 2, h: 3 }))).toEqual({ x: 2, y: 0, w: 4, h: 6 });
    // walls on three sides and two dots leave a 4×4 block between the dots as the winner
    const m = maskFrom(8, 5, (x, y) => (x === 1 && y === 1) || (x === 6 && y === 3) || y === 4 || x === 0 || x === 7);
    expect(largestEmptyRectangle(m)).toEqual({ x: 2, y: 0, w: 4, h: 4 });
  });

  it('matches a brute-force search on random masks', () => {
    const rng = rngFor('maxrect');
    for (let t = 0; t < 60; t++) {
      const w = 1 + rng.int(12), h = 1 + rng.int(12), p = rng.next() * 0.6;
      const m = maskFrom(w, h, () => rng.next() < p);
      const r = largestEmptyRectangle(m);
      const area = bruteLargestArea(m);
      if (area === 0) { expect(r).toBeNull(); continue; }
      expect(r!.w * r!.h).toBe(area);
      assertEmpty(m, r!);
    }
  });

  it('takes the same rectangle on single-box holes (its fast path) as the full search', () => {
    const rng = rngFor('single-box');
    for (let t = 0; t < 150; t++) {
      const w = 1 + rng.int(14), h = 1 + rng.int(14);
      const bx = rng.int(w), by = rng.int(h);
      const b = { x: bx, y: by, w: 1 + rng.int(w - bx), h: 1 + rng.int(h - by) };
      const m = boxMask(w, h, b);
      const r = largestEmptyRectangle(m);
      const area = bruteLargestArea(m);
      if (area === 0) { expect(r).toBeNull(); continue; }
      expect(r!.w * r!.h).toBe(area);
      assertEmpty(m, r!);
      // a single box plus one stray pixel far away forces the general scan; where the maximum is unique both agree
      const all: Box[] = [];
      for (let y0 = 0; y0 < h; y0++) for (let x0 = 0; x0 < w; x0++) for (let y1 = y0 + 1; y1 <= h; y1++) for (let x1 = x0 + 1; x1 <= w; x1++) {
        if ((x1 - x0) * (y1 - y0) !== area) continue;
        let empty = true;
        for (let y = y0; y < y1 && empty; y++) for (let x = x0; x < x1; x++) if (m.data[y * w + x]) { empty = false; break; }
        if (empty) all.push({ x: x0, y: y0, w: x1 - x0, h: y1 - y0 });
      }
      if (all.length === 1) expect(r).toEqual(all[0]);
    }
  });

  it('strip mode takes the longest full-width row run or full-height column run', () => {
    // box x 2..4, y 1..2 in 12×6: rows 3..5 free (3 rows · 12 = 36), cols 5..11 free (7 cols · 6 = 42)
    const m = boxMask(12, 6, { x: 2, y: 1, w: 3, h: 2 });
    expect(largestBackgroundStrip(m)).toEqual({ x: 5, y: 0, w: 7, h: 6 });
    // rows win when longer; the maximal rectangle can be bigger than any strip
    const m2 = maskFrom(10, 10, (x, y) => (x === 0 && y === 0) || (x === 9 && y === 9));
    expect(largestBackgroundStrip(m2)).toEqual({ x: 0, y: 1, w: 10, h: 8 });
    expect(largestEmptyRectangle(m2)!.w * largestEmptyRectangle(m2)!.h).toBe(81); // 9×9 beats the 10×8 strip
  });
});

/** numpy's np.tile(A, (ceil(h/ah), ceil(w/aw)))[:h, :w], built by literal repetition. */
function npTile(img: RGBImage, a: Box): RGBImage {
  const reps = [Math.ceil(img.height / a.h), Math.ceil(img.width / a.w)];
  const rows: number[][][] = [];
  for (let ry = 0; ry < reps[0]; ry++) for (let y = 0; y < a.h; y++) {
    const row: number[][] = [];
    for (let rx = 0; rx < reps[1]; rx++) for (let x = 0; x < a.w; x++) row.push(px(img, a.x + x, a.y + y));
    rows.push(row);
  }
  const out = newImage(img.width, img.height);
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) out.data.set(rows[y][x], (y * img.width + x) * 3);
  return out;
}

describe('tile: Algorithm 1 tiling', () => {
  it('reproduces the tiling pixel for pixel on a hand example (hole touching x = 0 and y = 0)', () => {
    // 7×6 image; the only background is a 3×2 block at (4, 0): A = that block, wrapped both ways
    const img = codedImage(7, 6);
    const hole = maskFrom(7, 6, (x, y) => !(x >= 4 && y < 2));
    const res = tileInfill(img, hole);
    expect(res.status).toBe('ok');
    if (res.status !== 'ok') return;
    expect(res.source).toEqual({ x: 4, y: 0, w: 3, h: 2 });
    const out = res.image;
    // hand-worked: out(x, y) = img(4 + x mod 3, y mod 2)
    expect(px(out, 0, 0)).toEqual(px(img, 4, 0));
    expect(px(out, 1, 0)).toEqual(px(img, 5, 0));
    expect(px(out, 2, 1)).toEqual(px(img, 6, 1));
    expect(px(out, 3, 2)).toEqual(px(img, 4, 0));
    expect(px(out, 5, 3)).toEqual(px(img, 6, 1));
    expect(px(out, 3, 5)).toEqual(px(img, 4, 1));
    expect(px(out, 6, 4)).toEqual(px(img, 4, 0));
    // and everywhere: the hole holds numpy's tiling, the background is the input
    const tiled = npTile(img, { x: 4, y: 0, w: 3, h: 2 });
    for (let y = 0; y < 6; y++) for (let x = 0; x < 7; x++) {
      expect(px(out, x, y)).toEqual(hole.data[y * 7 + x] ? px(tiled, x, y) : px(img, x, y));
    }
  });

  it('fills a box at x = 0 (where the authors\' code did nothing) from the rectangle on its right', () => {
    const img = codedImage(10, 8);
    const hole = boxMask(10, 8, { x: 0, y: 2, w: 3, h: 4 });
    const res = tileInfill(img, hole);
    expect(res.status).toBe('ok');
    if (res.status !== 'ok') return;
    const tiled = npTile(img, { x: 3, y: 0, w: 7, h: 8 });
    for (let y = 2; y < 6; y++) for (let x = 0; x < 3; x++) expect(px(res.image, x, y)).toEqual(px(tiled, x, y));
    expect(res.image.data).not.toEqual(img.data);
    expect(changedOutside(img, res.image, hole)).toBe(0);
  });

  it('skips, with a reason, when the hole covers everything', () => {
    const full = maskFrom(5, 4, () => true);
    const res = tileInfill(codedImage(5, 4), full);
    expect(res).toEqual({ status: 'skipped', reason: expect.stringMatching(/covers the whole image/) });
    const strip = tileInfill(codedImage(5, 4), maskFrom(5, 4, (x, y) => x === y || (x === 4 && y === 3)), 'strip');
    expect(strip.status).toBe('skipped');
  });
});

/** E[clip(c + σZ, 0, 1)] and its std, by numeric integration. */
function clippedMoments(c: number, sigma: number): { mean: number; std: number } {
  let m1 = 0, m2 = 0, wsum = 0;
  for (let z = -8; z <= 8; z += 0.001) {
    const w = Math.exp(-z * z / 2);
    const v = Math.min(1, Math.max(0, c + sigma * z));
    m1 += w * v; m2 += w * v * v; wsum += w;
  }
  const mean = m1 / wsum;
  return { mean, std: Math.sqrt(m2 / wsum - mean * mean) };
}

describe('random', () => {
  it('has the flat colour of its 1×1 grid as mean and σ = 0.2 noise (clipped), per channel', () => {
    const img = codedImage(64, 64);
    const region = maskFrom(64, 64, () => true);
    for (const key of ['a', 'b', 'c']) {
      const out = randomInfill(img, region, rngFor('rnd', key), { grid: [1, 1], sigma: 0.2 });
      const replay = rngFor('rnd', key);
      const colour = [replay.next(), replay.next(), replay.next()];
      for (let c = 0; c < 3; c++) {
        let s = 0, s2 = 0;
        for (let i = c; i < out.data.length; i += 3) { const v = out.data[i] / 255; s += v; s2 += v * v; }
        const n = out.data.length / 3, mean = s / n, std = Math.sqrt(s2 / n - mean * mean);
        const want = clippedMoments(colour[c], 0.2);
        expect(Math.abs(mean - want.mean)).toBeLessThan(0.012);
        expect(Math.abs(std - want.std)).toBeLessThan(0.012);
      }
    }
  });

  it('upsamples the colour grid bilinearly at pixel centres (σ = 0)', () => {
    const img = newImage(4, 4);
    const out = randomInfill(img, maskFrom(4, 4, () => true), rngFor('grid'), { grid: [2, 2], sigma: 0 });
    const g = rngFor('grid');
    const cells = Array.from({ length: 12 }, () => g.next()); // (row, col, channel)
    const at = (r: number, c: number, k: number) => cells[(r * 2 + c) * 3 + k];
    for (let k = 0; k < 3; k++) {
      expect(out.data[k]).toBe(Math.round(at(0, 0, k) * 255)); // corner quarter clamps to the cell
      expect(out.data[(3 * 4 + 3) * 3 + k]).toBe(Math.round(at(1, 1, k) * 255));
      // pixel (1, 0): x sample = (1.5·2)/4 − 0.5 = 0.25 between columns 0 and 1 of row 0
      expect(out.data[1 * 3 + k]).toBe(Math.round((0.75 * at(0, 0, k) + 0.25 * at(0, 1, k)) * 255));
      // pixel (2, 1): x = 0.75, y = 0.25
      const top = 0.25 * at(0, 0, k) + 0.75 * at(0, 1, k), bot = 0.25 * at(1, 0, k) + 0.75 * at(1, 1, k);
      expect(out.data[(1 * 4 + 2) * 3 + k]).toBe(Math.round((0.75 * top + 0.25 * bot) * 255));
    }
  });
});

describe('mixed-rand', () => {
  const img = codedImage(12, 10, 1);
  const object = maskFrom(12, 10, (x, y) => (x - 5) ** 2 + (y - 5) ** 2 <= 6);
  const background = invertMask(object);
  const donorImg = codedImage(12, 10, 90);
  const donorBox = boxMask(12, 10, { x: 0, y: 0, w: 5, h: 4 });
  const donor = (label: number, id: string): Donor => ({ sourceId: id, label, image: donorImg, box: donorBox });

  it('keeps the object and takes the background from the other-class donor, its own object tiled away', () => {
    const res = mixedRandInfill(img, background, 0, [donor(0, 'same'), donor(1, 'other')]);
    expect(res.status).toBe('ok');
    if (res.status !== 'ok') return;
    expect(res.donor).toBe('other');
    const donorBg = tileInfill(donorImg, donorBox);
    if (donorBg.status !== 'ok') throw new Error('unreachable');
    for (let y = 0; y < 10; y++) for (let x = 0; x < 12; x++) {
      expect(px(res.image, x, y)).toEqual(object.data[y * 12 + x] ? px(img, x, y) : px(donorBg.image, x, y));
    }
    // the donor's object pixels never appear: (1, 1) lies in its box and was replaced by the tiling
    expect(px(res.image, 1, 1)).not.toEqual(px(donorImg, 1, 1));
  });

  it('skips with a reason when no other class is available', () => {
    expect(mixedRandInfill(img, background, 0, [])).toEqual({ status: 'skipped', reason: expect.stringMatching(/no image of another class/) });
    expect(mixedRandInfill(img, background, 1, [donor(1, 'x')])).toEqual({ status: 'skipped', reason: expect.stringMatching(/same class/) });
  });
});

describe('every sync infill changes only its region', () => {
  const W = 24, H = 18;
  const masks: Record<string, Mask> = {
    centre: boxMask(W, H, { x: 8, y: 5, w: 7, h: 6 }),
    origin: boxMask(W, H, { x: 0, y: 0, w: 9, h: 7 }),
    rightEdge: boxMask(W, H, { x: 15, y: 0, w: 9, h: 18 }),
    blob: maskFrom(W, H, (x, y) => (x - 12) ** 2 / 36 + (y - 9) ** 2 / 16 <= 1),
    twoBoxes: maskFrom(W, H, (x, y) => (x < 5 && y > 10) || (x > 17 && y < 6)),
  };
  for (const method of listInfills()) {
    if (method.mode !== 'sync') continue;
    it(method.name, () => {
      const params = method.parseParams(method.name.includes('shuffle') ? { scope: 'batch', batch: 3 } : {});
      for (const [mname, obj] of Object.entries(masks)) {
        const img = noiseImage(W, H, mname);
        const region = method.kind === 'cf' ? obj : invertMask(obj);
        const donors: Donor[] = [1, 2].map((k) => ({ sourceId: `d${k}`, label: 7, image: noiseImage(W, H, `donor${k}`), box: boxMask(W, H, { x: 2, y: 2, w: 5, h: 5 }) }));
        const res = method.apply(img, region, rngFor(method.name, mname), params, { object: obj, box: obj, donors, label: 0, sourceId: mname });
        expect(res.status, `${method.name} on ${mname}`).toBe('ok');
        if (res.status !== 'ok') continue;
        expect(changedOutside(img, res.image, region), `${method.name} on ${mname}`).toBe(0);
        // and the region did change (every method here replaces something on noise images)
        let changed = 0;
        for (let i = 0; i < img.data.length; i++) if (img.data[i] !== res.image.data[i]) changed++;
        expect(changed, `${method.name} on ${mname}`).toBeGreaterThan(0);
      }
    });
  }
});

describe('registry', () => {
  it('validates params and names the bad key', () => {
    expect(getInfill('cf-random')!.parseParams({ grid: '4x3' })).toEqual({ grid: [4, 3], sigma: 0.2 });
    expect(() => getInfill('cf-random')!.parseParams({ grid: '0x3' })).toThrow(/grid/);
    expect(() => getInfill('cf-tile')!.parseParams({ mood: 'strip' })).toThrow(/unknown parameter "mood"/);
    expect(getInfill('f-shuffle')!.parseParams({})).toEqual({ scope: 'region' });
  });
});

describe('mask resize never shrinks the object', () => {
  it('downscales with any-over', () => {
    const m = maskFrom(4, 4, (x, y) => x === 1 && y === 1);
    expect(Array.from(resizeMaskAnyOver(m, 2, 2).data)).toEqual([1, 0, 0, 0]);
    const m2 = maskFrom(5, 5, (x, y) => x === 2 && y === 4); // straddles two output columns' footprints
    expect(Array.from(resizeMaskAnyOver(m2, 2, 2).data)).toEqual([0, 0, 1, 1]);
  });

  it('upscales with ceil: every output pixel partly over the object is object', () => {
    const m = maskFrom(2, 2, (x, y) => x === 0 && y === 0);
    expect(Array.from(resizeMaskAnyOver(m, 3, 3).data)).toEqual([1, 1, 0, 1, 1, 0, 0, 0, 0]);
  });

  it('keeps every object pixel represented on random masks', () => {
    const rng = rngFor('resize');
    for (let t = 0; t < 30; t++) {
      const w = 2 + rng.int(30), h = 2 + rng.int(30), W = 1 + rng.int(30), H = 1 + rng.int(30);
      const m = maskFrom(w, h, () => rng.next() < 0.05);
      const r = resizeMaskAnyOver(m, W, H);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        if (!m.data[y * w + x]) continue;
        // the output pixel containing the source pixel's centre must be object
        const ox = Math.floor(((x + 0.5) * W) / w), oy = Math.floor(((y + 0.5) * H) / h);
        expect(r.data[oy * W + ox]).toBe(1);
      }
    }
  });
});

describe('random streams', () => {
  it('FastStream.normal is N(0, 1): moments, tails and a KS distance', () => {
    const s = new FastStream(rngFor('zig'));
    const n = 200_000;
    const xs = new Float64Array(n);
    let m = 0, v = 0, t2 = 0;
    for (let i = 0; i < n; i++) { const z = s.normal(); xs[i] = z; m += z; v += z * z; if (Math.abs(z) > 2) t2++; }
    m /= n; v = v / n - m * m;
    expect(Math.abs(m)).toBeLessThan(0.01);
    expect(Math.abs(v - 1)).toBeLessThan(0.015);
    expect(Math.abs(t2 / n - 0.0455)).toBeLessThan(0.003);
    xs.sort();
    let d = 0;
    for (let i = 0; i < n; i += 7) d = Math.max(d, Math.abs(normalCdf(xs[i]) - (i + 0.5) / n));
    expect(d).toBeLessThan(0.005); // KS 1% critical value at n = 200k is 0.0036; the stride adds ≤ 7/n
  });

  it('the alias table of the quantized normal holds exactly the 256 probabilities', () => {
    for (const [f, sigma] of [[0.5, 0.2], [0.02, 0.2], [0.97, 0.05], [0.3, 1.5]]) {
      const q = quantizedNormal(f, sigma);
      const implied = new Float64Array(256);
      for (let i = 0; i < 256; i++) {
        implied[i] += q.prob[i] / 16777216 / 256;
        if (q.alias[i] !== i) implied[q.alias[i]] += (1 - q.prob[i] / 16777216) / 256;
      }
      for (let k = 0; k < 256; k++) {
        const lo = k === 0 ? 0 : normalCdf(((k - 0.5) / 255 - f) / sigma);
        const hi = k === 255 ? 1 : normalCdf(((k + 0.5) / 255 - f) / sigma);
        expect(Math.abs(implied[k] - (hi - lo))).toBeLessThan(1e-6);
      }
    }
  });

  it('a flat field with sigma = 0 is exactly round(255 f), and the flat and grid paths agree in distribution', () => {
    const img = newImage(40, 40);
    const all = maskFrom(40, 40, () => true);
    const flat = randomInfill(img, all, rngFor('s0'), { grid: [1, 1], sigma: 0 });
    const g = rngFor('s0');
    const c = [g.next(), g.next(), g.next()];
    for (let k = 0; k < 3; k++) expect(flat.data[k]).toBe(Math.round(c[k] * 255));
    // grid 2×2 with σ = 0.2 runs the ziggurat path: per-pixel deviations from its σ = 0 field have std ≈ 0.2·255
    const a = randomInfill(img, all, rngFor('g2'), { grid: [2, 2], sigma: 0.2 });
    const b = randomInfill(img, all, rngFor('g2'), { grid: [2, 2], sigma: 0 });
    let s = 0, s2 = 0, n = 0;
    for (let i = 0; i < a.data.length; i++) if (b.data[i] > 80 && b.data[i] < 175) { const d = a.data[i] - b.data[i]; s += d; s2 += d * d; n++; }
    expect(n).toBeGreaterThan(500);
    // away from the clip edges (|field − 0.5| < 0.19 ≈ 1σ: clipping is rare but not absent, so a loose bound)
    expect(Math.abs(s / n)).toBeLessThan(3);
    expect(Math.abs(Math.sqrt(s2 / n - (s / n) ** 2) - 51)).toBeLessThan(6);
  });
});
