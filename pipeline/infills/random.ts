import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { Rng } from '../../manifests/rng.ts';
import { FastStream } from './fast-stream.ts';
import { quantizedNormal, quantizedValue } from './quantized-normal.ts';
import { maskArea, maskRuns } from '../masks-ops.ts';
import { pooledCopy } from '../pixel-pool.ts';

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
  // Each lattice row interpolated along x once, for every x: the same expression (same operands, same order)
  // the per-pixel bilinear step uses for its top and bottom values, so only the y step is left per pixel.
  const across = new Float64Array(gh * W * 3);
  for (let gy = 0; gy < gh; gy++) {
    for (let x = 0; x < W; x++) {
      const a = (gy * gw + xs.lo[x]) * 3, b = (gy * gw + xs.hi[x]) * 3, wx = xs.w[x], o = (gy * W + x) * 3;
      for (let k = 0; k < 3; k++) across[o + k] = grid[a + k] + (grid[b + k] - grid[a + k]) * wx;
    }
  }
  const out = pooledCopy(img.data);
  // bytes past the image's last row draw nothing
  const r = region.data.length > W * H ? region.data.subarray(0, W * H) : region.data;
  // Normals are drawn ahead a block at a time, in the order the per-pixel calls would draw them, and exactly as
  // many in all as the region's pixels need (3 each).
  let need = 3 * maskArea({ width: W, height: H, data: r });
  const z = new Float64Array(Math.min(need, 3 * W));
  let j = z.length;
  for (let y = 0; y < H; y++) {
    const rowOff = y * W;
    const top = ys.lo[y] * W * 3, bot = ys.hi[y] * W * 3, wy = ys.w[y];
    for (let x = 0; x < W; x++) {
      if (!r[rowOff + x]) continue;
      if (j === z.length) { const m = Math.min(z.length, need); noise.fillNormal(z, 0, m); need -= m; j = 0; }
      const p = (rowOff + x) * 3;
      for (let ch = 0; ch < 3; ch++, j++) {
        const t = across[top + x * 3 + ch], b = across[bot + x * 3 + ch];
        let v = t + (b - t) * wy + sigma * z[j];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        out[p + ch] = (v * 255 + 0.5) | 0;
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
  // the three channels' packed alias tables side by side: channel k's at [256k, 256k + 256)
  const table = new Int32Array(768);
  for (let k = 0; k < 3; k++) table.set(quantizedNormal(colour[k], sigma).packed, k << 8);
  const out = pooledCopy(img.data);
  const runs = maskRuns(region);
  // sfc32 stepped inline on locals (FastStream.i32 does the same on its state array, ~1.5× slower per draw here)
  const s = noise.state;
  let a = s[0], b = s[1], c = s[2], d = s[3];
  for (let k = 0; k < runs.length; k += 2) {
    for (let p = runs[k] * 3, end = runs[k + 1] * 3; p < end; p += 3) {
      for (let ch = 0; ch < 3; ch++) {
        const t = (a + b) | 0;
        d = (d + 1) | 0;
        const x = (t + d) | 0;
        a = b ^ (b >>> 9);
        b = (c + (c << 3)) | 0;
        c = (((c << 21) | (c >>> 11)) + x) | 0;
        out[p + ch] = quantizedValue(table, ch << 8, x);
      }
    }
  }
  s[0] = a; s[1] = b; s[2] = c; s[3] = d;
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
