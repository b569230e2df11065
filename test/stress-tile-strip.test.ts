import { describe, it, expect } from 'vitest';
import { newImage, newMask, type Mask } from '../manifests/pixels.ts';
import { getInfill, largestBackgroundStrip, tileInfill } from '../pipeline/infills/index.ts';

/**
 * `tile` mode=strip chooses between the longest full-width row run and the longest full-height column run by run
 * length, as the authors' TileInpainter does (`row_chunk[1] - row_chunk[0] >= col_chunk[1] - col_chunk[0]`), not by
 * area. The two rules disagree only on non-square images, so the test image is 20×6.
 */

function mask(w: number, h: number, on: (x: number, y: number) => boolean): Mask {
  const m = newMask(w, h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m.data[y * w + x] = on(x, y) ? 1 : 0;
  return m;
}

describe('tile mode=strip on a non-square image', () => {
  // 20×6; hole x 0..14 (touching the left edge), y 2..5: free rows 0..1 (run 2, area 2·20 = 40), free columns
  // 15..19 (run 5, area 5·6 = 30)
  const W = 20, H = 6;
  const m = mask(W, H, (x, y) => x <= 14 && y >= 2);

  it('takes the 5-column run over the 2-row run, although the rows cover more pixels', () => {
    expect(largestBackgroundStrip(m)).toEqual({ x: 15, y: 0, w: 5, h: 6 });
  });

  it('fills the hole from those columns', () => {
    const img = newImage(W, H);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) img.data.set([x * 10, y * 40, 7], (y * W + x) * 3);
    const r = tileInfill(img, m, 'strip');
    expect(r.status).toBe('ok');
    if (r.status !== 'ok') return;
    expect(r.source).toEqual({ x: 15, y: 0, w: 5, h: 6 });
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const p = (y * W + x) * 3;
      // inside the hole: column 15 + x mod 5, same row (the strip is full height)
      const want = m.data[y * W + x] ? [(15 + (x % 5)) * 10, y * 40, 7] : [x * 10, y * 40, 7];
      expect(Array.from(r.image.data.subarray(p, p + 3))).toEqual(want);
    }
  });

  it('rows win a tie of run lengths, and a longer row run wins', () => {
    // 12×4: free rows 0..2 (3), free columns 9..11 (3): a tie → rows
    expect(largestBackgroundStrip(mask(12, 4, (x, y) => y === 3 && x < 9))).toEqual({ x: 0, y: 0, w: 12, h: 3 });
    // 6×20 (tall): free rows 0..3 (4 · 6 = 24), free column 5 (1 · 20 = 20): rows by either rule
    expect(largestBackgroundStrip(mask(6, 20, (x, y) => y >= 4 && x < 5))).toEqual({ x: 0, y: 0, w: 6, h: 4 });
    // 6×20: free rows 0..1 (2 · 6 = 12), free columns 4..5 (2 · 20 = 40): a tie of lengths → rows, although columns cover more
    expect(largestBackgroundStrip(mask(6, 20, (x, y) => y >= 2 && x < 4))).toEqual({ x: 0, y: 0, w: 6, h: 2 });
  });

  it('cf-tile-strip carries algorithm 2, so corpora written with the area rule are not resumed as if equal', () => {
    expect(getInfill('cf-tile-strip')!.algorithm).toBe(2);
  });
});
