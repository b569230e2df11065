import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { Rng } from '../../manifests/rng.ts';
import { FastStream } from './fast-stream.ts';
import { quantizedNormal, sampleQuantized } from './quantized-normal.ts';

export interface RandomParams {
  /** coarse colour grid [rows, cols]; [1, 1] (the authors' code) is one flat colour per image */
  grid: [number, number];
  /** std of the per-pixel, per-channel Gaussian noise in [0, 1] units */
  sigma: number;
}

/**
 * Random infill (DESIGN §2): a low-frequency field, U(0,1) colours on a grid×grid lattice per channel bilinearly
 * upsampled to the image, plus i.i.d. N(0, σ) per pixel and channel, clipped to [0, 1] and rounded to uint8.
 *
 * The rng is consumed in a fixed order so any item can be reproduced on its own: first the grid colours (row,
 * column, channel) from the item rng, then a FastStream seeded from it gives three normals per region pixel in
 * raster order. Pixels outside the region draw nothing.
 * Upsampling uses pixel centres (align_corners = false, edges clamped), so a 1×1 grid is exactly flat; that case
 * (the default) samples each uint8 directly from its exact distribution instead (see flatRandom).
 */
export function randomInfill(img: RGBImage, region: Mask, rng: Rng, params: RandomParams): RGBImage {
  const { width: W, height: H } = img;
  const [gh, gw] = params.grid;
  const sigma = params.sigma;
  const grid = new Float64Array(gh * gw * 3);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.next();

  const noise = new FastStream(rng);
  if (gh === 1 && gw === 1) return flatRandom(img, region, noise, grid, sigma);
  const xs = axis(W, gw);
  const ys = axis(H, gh);
  const out = img.data.slice();
  const r = region.data;
  const field = new Float64Array(3);
  for (let y = 0; y < H; y++) {
    const y0 = ys.lo[y], y1 = ys.hi[y], wy = ys.w[y];
    const rowOff = y * W;
    for (let x = 0; x < W; x++) {
      if (!r[rowOff + x]) continue;
      const x0 = xs.lo[x], x1 = xs.hi[x], wx = xs.w[x];
      const a = (y0 * gw + x0) * 3, b = (y0 * gw + x1) * 3, c = (y1 * gw + x0) * 3, d = (y1 * gw + x1) * 3;
      for (let k = 0; k < 3; k++) {
        const top = grid[a + k] + (grid[b + k] - grid[a + k]) * wx;
        const bot = grid[c + k] + (grid[d + k] - grid[c + k]) * wx;
        field[k] = top + (bot - top) * wy;
      }
      const p = (rowOff + x) * 3;
      for (let k = 0; k < 3; k++) {
        let v = field[k] + sigma * noise.normal();
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        out[p + k] = (v * 255 + 0.5) | 0;
      }
    }
  }
  return { width: W, height: H, data: out };
}

/**
 * The 1×1 grid: the field is one colour per channel, so each channel's uint8 output has a fixed distribution and is
 * drawn directly from it (quantized-normal.ts), with one draw per scalar instead of a normal and a rounding.
 */
function flatRandom(img: RGBImage, region: Mask, noise: FastStream, colour: Float64Array, sigma: number): RGBImage {
  const [q0, q1, q2] = [0, 1, 2].map((k) => quantizedNormal(colour[k], sigma));
  const out = img.data.slice();
  const r = region.data;
  for (let i = 0, p = 0; i < r.length; i++, p += 3) {
    if (!r[i]) continue;
    out[p] = sampleQuantized(q0, noise);
    out[p + 1] = sampleQuantized(q1, noise);
    out[p + 2] = sampleQuantized(q2, noise);
  }
  return { width: img.width, height: img.height, data: out };
}

/** Bilinear sample positions of n output pixels over a g-cell lattice: lower/upper cell and weight. */
function axis(n: number, g: number): { lo: Int32Array; hi: Int32Array; w: Float64Array } {
  const lo = new Int32Array(n), hi = new Int32Array(n), w = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = ((i + 0.5) * g) / n - 0.5;
    if (s < 0) s = 0;
    if (s > g - 1) s = g - 1;
    const f = Math.floor(s);
    lo[i] = f;
    hi[i] = Math.min(f + 1, g - 1);
    w[i] = s - f;
  }
  return { lo, hi, w };
}
