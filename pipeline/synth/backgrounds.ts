import type { Rng } from '../../manifests/rng.ts';
import { newImage, type RGBImage } from '../../manifests/pixels.ts';

/**
 * Procedural backgrounds: pure functions of (rng, size, difficulty) over typed arrays.
 * `difficulty` in [0, 1] pulls every family's colours toward a shared neutral and adds noise, so at 0 the families
 * are trivially separable (a strong shortcut) and at 1 they overlap.
 * Every channel is kept >= BG_MIN so that IN-9's "no_fg is black" test never fires on background.
 */
export const BG_MIN = 24;

type RGB = [number, number, number];
const NEUTRAL: RGB = [105, 112, 100];

function clamp(v: number): number {
  return v < BG_MIN ? BG_MIN : v > 255 ? 255 : Math.round(v);
}

function lerp3(a: RGB, b: RGB, t: number): RGB {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

function jitter(c: RGB, rng: Rng, amount: number): RGB {
  return [c[0] + (rng.next() * 2 - 1) * amount, c[1] + (rng.next() * 2 - 1) * amount, c[2] + (rng.next() * 2 - 1) * amount];
}

/** Smooth value noise in [0, 1]: random grid values every `cell` pixels, smoothstep-interpolated. */
export function valueNoise(rng: Rng, w: number, h: number, cell: number): Float32Array {
  const gw = Math.ceil(w / cell) + 2, gh = Math.ceil(h / cell) + 2;
  const grid = new Float32Array(gw * gh);
  for (let i = 0; i < grid.length; i++) grid[i] = rng.next();
  const out = new Float32Array(w * h);
  const s = (t: number) => t * t * (3 - 2 * t);
  for (let y = 0; y < h; y++) {
    const gy = y / cell, iy = Math.floor(gy), ty = s(gy - iy);
    for (let x = 0; x < w; x++) {
      const gx = x / cell, ix = Math.floor(gx), tx = s(gx - ix);
      const a = grid[iy * gw + ix], b = grid[iy * gw + ix + 1], c = grid[(iy + 1) * gw + ix], d = grid[(iy + 1) * gw + ix + 1];
      out[y * w + x] = (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty;
    }
  }
  return out;
}

/** Shared finishing: pull toward the neutral by difficulty, add per-pixel noise, clamp. */
function finish(img: RGBImage, rng: Rng, difficulty: number): RGBImage {
  const pull = difficulty * (0.45 + 0.35 * rng.next());
  const amp = 6 + 40 * difficulty;
  const grain = valueNoise(rng, img.width, img.height, 2);
  const d = img.data;
  for (let i = 0, p = 0; i < grain.length; i++, p += 3) {
    const n = (grain[i] * 2 - 1) * amp;
    for (let c = 0; c < 3; c++) d[p + c] = clamp(d[p + c] + (NEUTRAL[c] - d[p + c]) * pull + n);
  }
  return img;
}

function paint(w: number, h: number, colourAt: (x: number, y: number) => RGB): RGBImage {
  const img = newImage(w, h);
  for (let y = 0, p = 0; y < h; y++) {
    for (let x = 0; x < w; x++, p += 3) {
      const c = colourAt(x, y);
      img.data[p] = clamp(c[0]); img.data[p + 1] = clamp(c[1]); img.data[p + 2] = clamp(c[2]);
    }
  }
  return img;
}

/** Water: blue tones with travelling waves and ripple highlights. */
export function waterBackground(rng: Rng, w: number, h: number, difficulty: number): RGBImage {
  const deep = jitter([30, 85, 165], rng, 18), light = jitter([140, 195, 235], rng, 15);
  const period = h / (2.5 + rng.next() * 4), ph = rng.next() * 6.28, ph2 = rng.next() * 6.28, wob = 0.8 + rng.next() * 1.5;
  const n = valueNoise(rng, w, h, Math.max(3, w / 8));
  return finish(paint(w, h, (x, y) => {
    const t = 0.5 + 0.5 * Math.sin((2 * Math.PI * y) / period + wob * Math.sin((2 * Math.PI * x) / (w * 0.6) + ph2) + ph);
    return lerp3(deep, light, 0.45 * t * t * t + 0.25 * n[y * w + x] + (0.15 * y) / h);
  }), rng, difficulty);
}

/** Land: forest greens and browns with tree trunks and a ground band. */
export function landBackground(rng: Rng, w: number, h: number, difficulty: number): RGBImage {
  const leaf = jitter([55, 115, 40], rng, 18), leafDark = jitter([25, 65, 25], rng, 10), ground = jitter([120, 88, 50], rng, 15);
  const trunk: RGB = [70, 50, 32];
  const n = valueNoise(rng, w, h, Math.max(3, w / 7));
  const groundY = h * (0.7 + rng.next() * 0.2);
  const trunks = Array.from({ length: 2 + rng.int(3) }, () => ({ x: rng.next() * w, half: 1 + rng.next() * (w / 40) }));
  return finish(paint(w, h, (x, y) => {
    if (y > groundY) return lerp3(ground, leafDark, 0.4 * n[y * w + x]);
    if (trunks.some((t) => Math.abs(x - t.x) <= t.half)) return trunk;
    return lerp3(leafDark, leaf, n[y * w + x]);
  }), rng, difficulty);
}

/** The nine IN-9 background families (class c's natural background is family c). */
export const IN9_BACKGROUND_FAMILIES = ['grass', 'sky', 'road', 'sand', 'savanna', 'flowers', 'stage', 'jungle', 'underwater'] as const;

export function in9Background(family: number, rng: Rng, w: number, h: number, difficulty: number): RGBImage {
  const n = valueNoise(rng, w, h, Math.max(3, w / 6));
  const fine = valueNoise(rng, w, h, 2);
  let img: RGBImage;
  switch (IN9_BACKGROUND_FAMILIES[family]) {
    case 'grass': {
      const a = jitter([45, 120, 40], rng, 12), b = jitter([110, 180, 70], rng, 12);
      img = paint(w, h, (x, y) => lerp3(a, b, 0.6 * n[y * w + x] + 0.4 * fine[y * w + x]));
      break;
    }
    case 'sky': {
      const top = jitter([90, 150, 225], rng, 12), bottom = jitter([200, 225, 250], rng, 8);
      img = paint(w, h, (x, y) => lerp3(lerp3(top, bottom, y / h), [250, 250, 250], Math.max(0, n[y * w + x] - 0.55) * 2));
      break;
    }
    case 'road': {
      const asphalt = jitter([85, 85, 92], rng, 10), stripe: RGB = rng.next() < 0.5 ? [235, 235, 235] : [230, 200, 60];
      const y0 = h * (0.3 + 0.4 * rng.next()), dash = 6 + rng.int(6);
      img = paint(w, h, (x, y) => (Math.abs(y - y0) < Math.max(1, h / 40) && Math.floor(x / dash) % 2 === 0 ? stripe : lerp3(asphalt, [120, 120, 125], 0.5 * fine[y * w + x])));
      break;
    }
    case 'sand': {
      const a = jitter([200, 170, 110], rng, 12), b = jitter([235, 210, 155], rng, 10), period = 5 + rng.next() * 6;
      img = paint(w, h, (x, y) => lerp3(a, b, 0.5 + 0.5 * Math.sin((x + 0.6 * y) / period + 2 * n[y * w + x])));
      break;
    }
    case 'savanna': {
      const a = jitter([175, 145, 60], rng, 12), b = jitter([120, 95, 40], rng, 10);
      img = paint(w, h, (x, y) => lerp3(a, b, (Math.floor(x + 3 * n[y * w + x]) % 3 === 0 ? 0.6 : 0.1) + 0.3 * fine[y * w + x]));
      break;
    }
    case 'flowers': {
      const leaf = jitter([60, 140, 55], rng, 12);
      const palette: RGB[] = [[230, 60, 90], [250, 220, 60], [240, 240, 250], [170, 80, 220]];
      const dots = Array.from({ length: Math.round((w * h) / 60) }, () => ({ x: rng.next() * w, y: rng.next() * h, r: 0.8 + rng.next() * 1.5, c: palette[rng.int(palette.length)] }));
      img = paint(w, h, (x, y) => {
        for (const d of dots) if ((x - d.x) ** 2 + (y - d.y) ** 2 <= d.r * d.r) return d.c;
        return lerp3(leaf, [30, 90, 35], n[y * w + x]);
      });
      break;
    }
    case 'stage': {
      const dark = jitter([55, 25, 60], rng, 10), spot = jitter([250, 210, 120], rng, 10);
      const cx = w * (0.2 + 0.6 * rng.next()), cy = h * 0.3 * rng.next(), r = w * (0.3 + 0.3 * rng.next());
      img = paint(w, h, (x, y) => lerp3(dark, spot, Math.max(0, 1 - Math.hypot(x - cx, y - cy) / r) * 0.8));
      break;
    }
    case 'jungle': {
      const a = jitter([20, 70, 30], rng, 8), vine = jitter([70, 140, 50], rng, 10), period = 4 + rng.next() * 5;
      img = paint(w, h, (x, y) => lerp3(a, vine, Math.max(0, Math.sin((x + 4 * n[y * w + x]) / period)) ** 3 * 0.9 + 0.1 * fine[y * w + x]));
      break;
    }
    case 'underwater': {
      const top = jitter([40, 150, 170], rng, 10), bottom = jitter([10, 50, 90], rng, 8);
      const bubbles = Array.from({ length: 3 + rng.int(5) }, () => ({ x: rng.next() * w, y: rng.next() * h, r: 1 + rng.next() * (w / 25) }));
      img = paint(w, h, (x, y) => {
        for (const b of bubbles) { const d = Math.hypot(x - b.x, y - b.y); if (d <= b.r && d >= b.r - 1) return [210, 240, 250]; }
        return lerp3(top, bottom, y / h + 0.2 * (n[y * w + x] - 0.5));
      });
      break;
    }
    default:
      throw new Error(`unknown IN-9 background family ${family}`);
  }
  return finish(img, rng, difficulty);
}

/**
 * A camera-trap location's fixed scene (the camera does not move): ground, horizon, a few rocks and trees.
 * Generated from the location's own rng, so every image at a location shares it.
 */
export function cctLocationScene(rng: Rng, w: number, h: number): RGBImage {
  const grounds: RGB[] = [[120, 100, 60], [90, 120, 60], [150, 135, 110], [100, 85, 70], [70, 100, 55], [170, 150, 100]];
  const ground = jitter(grounds[rng.int(grounds.length)], rng, 15);
  const backdrop = jitter(rng.next() < 0.5 ? [60, 95, 50] : [150, 170, 190], rng, 15);
  const horizon = h * (0.15 + 0.35 * rng.next());
  const tilt = (rng.next() - 0.5) * 0.4;
  const rocks = Array.from({ length: rng.int(4) }, () => ({ x: rng.next() * w, y: horizon + rng.next() * (h - horizon), rx: 2 + rng.next() * w / 8, ry: 1 + rng.next() * h / 14, c: jitter([130, 130, 125], rng, 20) }));
  const trees = Array.from({ length: rng.int(4) }, () => ({ x: rng.next() * w, half: 1 + rng.next() * w / 30, c: jitter([60, 45, 30], rng, 10) }));
  const n = valueNoise(rng, w, h, Math.max(3, w / 5));
  return paint(w, h, (x, y) => {
    for (const t of trees) if (Math.abs(x - t.x) <= t.half && y < horizon + h * 0.15) return t.c;
    for (const r of rocks) if (((x - r.x) / r.rx) ** 2 + ((y - r.y) / r.ry) ** 2 <= 1) return r.c;
    const base = y < horizon + tilt * (x - w / 2) ? backdrop : ground;
    return lerp3(base, [base[0] * 0.6, base[1] * 0.6, base[2] * 0.6], 0.5 * n[y * w + x]);
  });
}

/** One capture of a location: lighting of the moment and sensor noise. */
export function cctCapture(scene: RGBImage, rng: Rng, difficulty: number): RGBImage {
  const out = newImage(scene.width, scene.height);
  const gain = 0.75 + 0.5 * rng.next();
  const amp = 4 + 30 * difficulty;
  const grain = valueNoise(rng, scene.width, scene.height, 1.5);
  for (let i = 0, p = 0; i < grain.length; i++, p += 3) {
    const n = (grain[i] * 2 - 1) * amp;
    for (let c = 0; c < 3; c++) out.data[p + c] = clamp(scene.data[p + c] * gain + n);
  }
  return out;
}

/** Night shot: camera traps switch to infrared, so the whole frame (animal included) turns grey and darker. */
export function infrared(img: RGBImage): RGBImage {
  const out = newImage(img.width, img.height);
  for (let p = 0; p < img.data.length; p += 3) {
    const g = clamp((0.3 * img.data[p] + 0.59 * img.data[p + 1] + 0.11 * img.data[p + 2]) * 0.8);
    out.data[p] = out.data[p + 1] = out.data[p + 2] = g;
  }
  return out;
}
