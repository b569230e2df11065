import * as tf from '@tensorflow/tfjs-core';
import sharp, { type OverlayOptions } from 'sharp';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { resolveInsideRoot } from '../manifests/masks.ts';
import { rngFor } from '../manifests/rng.ts';
import type { SourceRow } from '../manifests/schema.ts';
import { inputGradient } from '../trainer/attribution.ts';
import { decodeResized } from '../trainer/augment.ts';
import { loadModel } from '../trainer/checkpoint.ts';
import { evalBatches, loadDatasetIndex } from '../trainer/data.ts';
import { averagePrecision, pixelImportance } from '../trainer/metrics.ts';
import type { RunRecord } from './collect.ts';

/**
 * A saliency figure like the paper's Figure 4: a fixed, seeded set of test images (the same for every method), and
 * for each METHOD the input-gradient saliency of its best checkpoint (trainer/attribution.ts; importance =
 * Σ_channels gradient², DESIGN §7) over the image. The object's outline is drawn on the first column, and each
 * panel's average precision against the object mask (the AUPR of §7, for this one image) is printed under it.
 */

/** The figure and what it shows. */
export interface SaliencyFigure {
  png: Buffer;
  /** METHODs, one column each, and the run whose checkpoint was used */
  methods: { method: string; run: string }[];
  sources: string[];
  subset: string;
  /** per method, the mean per-image AP over the shown images */
  meanAp: Record<string, number>;
}

/** Colour map for t in [0, 1]: black → purple → orange → pale yellow (inferno-like, readable in print). */
export function heatColour(t: number): [number, number, number] {
  const stops: [number, number, number, number][] = [[0, 0, 0, 4], [0.35, 120, 28, 109], [0.7, 237, 105, 37], [1, 252, 255, 164]];
  const x = Math.min(1, Math.max(0, t));
  for (let i = 1; i < stops.length; i++) {
    if (x <= stops[i][0]) {
      const [a, b] = [stops[i - 1], stops[i]];
      const f = (x - a[0]) / (b[0] - a[0]);
      return [0, 1, 2].map((c) => Math.round(a[c + 1] + f * (b[c + 1] - a[c + 1]))) as [number, number, number];
    }
  }
  return [252, 255, 164];
}

/** Importance scaled to [0, 1] by its 99th percentile, so one hot pixel does not wash out the rest. */
export function normaliseImportance(imp: ArrayLike<number>): Float32Array {
  const sorted = Float64Array.from(imp).sort();
  const hi = sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] || sorted[sorted.length - 1] || 1;
  return Float32Array.from(imp, (v) => Math.min(1, v / (hi || 1)));
}

/** The images shown: with a mask, from the main test split; Waterbirds-like data take the flip images (y ≠ place). */
export function pickSaliencyImages(test: Map<string, SourceRow[]>, n: number, seed: number): { rows: SourceRow[]; subset: string } {
  const split = test.has('test') ? 'test' : [...test.keys()][0];
  let rows = (test.get(split) ?? []).filter((r) => (r.variant === null || r.variant === 'original') && (r.mask_path || (r.boxes && r.boxes.length >= 4)));
  let subset = split;
  if (rows.some((r) => r.place !== null) && rows.some((r) => r.place !== null && r.place !== r.label)) {
    rows = rows.filter((r) => r.place !== null && r.place !== r.label);
    subset = `${split}/flip`;
  }
  const ids = rows.map((r) => r.id).sort();
  rngFor(seed, 'report-saliency').shuffle(ids);
  const keep = new Set(ids.slice(0, n));
  return { rows: rows.filter((r) => keep.has(r.id)).sort((a, b) => a.label - b.label || a.id.localeCompare(b.id)), subset };
}

/** Saliency panels of every METHOD (one run each: the lowest seed with a best checkpoint). Needs an initialised tfjs backend. */
export async function saliencyFigure(runs: readonly RunRecord[], o: { images: number; seed: number; cell: number; log?: (l: string) => void }): Promise<SaliencyFigure | null> {
  const byMethod = new Map<string, RunRecord>();
  for (const r of [...runs].sort((a, b) => a.seed - b.seed)) {
    if (!byMethod.has(r.method) && existsSync(join(r.dir, 'best', 'model.json'))) byMethod.set(r.method, r);
  }
  if (!byMethod.size || o.images <= 0) return null;
  const first = [...byMethod.values()][0];
  const index = await loadDatasetIndex({ corporaRoot: first.config.corporaRoot, dataset: first.dataset, terms: [] });
  const { rows, subset } = pickSaliencyImages(index.test, o.images, o.seed);
  if (!rows.length) return null;
  const C = o.cell, HEADER = 30, FOOT = 14;
  const cols = 1 + byMethod.size, W = cols * C, H = HEADER + rows.length * (C + FOOT);
  const layers: OverlayOptions[] = [];
  const labels = ['image'];
  const meanAp: Record<string, number> = {};
  const apText: string[][] = rows.map(() => []);
  // the image column: shown at cell size, with the object's outline from the mask the evaluation uses
  for await (const b of evalBatches(index.root, rows, { size: C, batchSize: rows.length, withMasks: true })) {
    for (let i = 0; i < b.n; i++) {
      const img = await decodeResized(resolveInsideRoot(index.root, rows[i].path, { file: 'source manifest', row: rows[i].id }), C, C);
      const out = Buffer.from(img.data);
      const m = b.masks!.subarray(i * C * C, (i + 1) * C * C);
      for (let y = 0; y < C; y++) for (let x = 0; x < C; x++) {
        const p = y * C + x;
        const edge = m[p] && (x === 0 || y === 0 || x === C - 1 || y === C - 1 || !m[p - 1] || !m[p + 1] || !m[p - C] || !m[p + C]);
        if (edge) out.set([0, 255, 255], p * 3);
      }
      layers.push({ input: await sharp(out, { raw: { width: C, height: C, channels: 3 } }).png().toBuffer(), top: HEADER + i * (C + FOOT), left: 0 });
    }
  }
  let col = 1;
  for (const [method, run] of byMethod) {
    const S = run.eval?.size ?? run.config.hyper.size;
    o.log?.(`saliency: ${method} (${run.id}), ${rows.length} images at ${S} px`);
    const model = await loadModel(join(run.dir, 'best'));
    const aps: number[] = [];
    try {
      for await (const b of evalBatches(index.root, rows, { size: S, batchSize: rows.length, withMasks: true })) {
        const x = tf.tensor4d(b.x, [b.n, S, S, 3]);
        const g = inputGradient((xx) => model.apply(xx), x, b.labels, model.config.numClasses);
        const gv = await g.data();
        g.dispose(); x.dispose();
        for (let i = 0; i < b.n; i++) {
          const imp = pixelImportance(gv.subarray(i * S * S * 3, (i + 1) * S * S * 3));
          const ap = averagePrecision(imp, b.masks!.subarray(i * S * S, (i + 1) * S * S));
          aps.push(ap);
          apText[i].push(Number.isNaN(ap) ? 'AP n/a' : `AP ${ap.toFixed(2)}`);
          const t = normaliseImportance(imp);
          // heat at model resolution, smoothed up to the cell, blended over the dimmed image
          const heat8 = await sharp(Buffer.from(Uint8Array.from(t, (v) => Math.round(255 * v))), { raw: { width: S, height: S, channels: 1 } })
            .resize(C, C, { kernel: 'cubic' }).raw().toBuffer();
          const img = await decodeResized(resolveInsideRoot(index.root, rows[i].path, { file: 'source manifest', row: rows[i].id }), C, C);
          const out = Buffer.alloc(C * C * 3);
          for (let p = 0; p < C * C; p++) {
            const a = heat8[p] / 255, [hr, hg, hb] = heatColour(a);
            out[p * 3] = Math.round((1 - a) * 0.45 * img.data[p * 3] + a * hr);
            out[p * 3 + 1] = Math.round((1 - a) * 0.45 * img.data[p * 3 + 1] + a * hg);
            out[p * 3 + 2] = Math.round((1 - a) * 0.45 * img.data[p * 3 + 2] + a * hb);
          }
          layers.push({ input: await sharp(out, { raw: { width: C, height: C, channels: 3 } }).png().toBuffer(), top: HEADER + i * (C + FOOT), left: col * C });
        }
      }
    } finally {
      model.dispose();
    }
    const ok = aps.filter((v) => !Number.isNaN(v));
    meanAp[method] = ok.length ? ok.reduce((a, v) => a + v, 0) / ok.length : NaN;
    labels.push(method);
    col++;
  }
  layers.unshift({ input: textSvg(W, H, labels, C, HEADER, FOOT, apText), top: 0, left: 0 });
  const raw = await sharp({ create: { width: W, height: H, channels: 3, background: { r: 255, g: 255, b: 255 } } }).composite(layers).raw().toBuffer({ resolveWithObject: true });
  const png = await sharp(raw.data, { raw: { width: W, height: H, channels: raw.info.channels } }).removeAlpha().png().toBuffer();
  return { png, methods: [...byMethod].map(([method, r]) => ({ method, run: r.id })), sources: rows.map((r) => r.id), subset, meanAp };
}

/** Column headers (long METHODs broken at a '+') and the AP line under each panel, as one SVG layer. */
function textSvg(W: number, H: number, labels: string[], C: number, HEADER: number, FOOT: number, ap: string[][]): Buffer {
  const esc = (s: string) => s.replace(/[<>&"]/g, (ch) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[ch]!);
  const parts: string[] = [];
  labels.forEach((l, i) => {
    const cut = l.length > 22 ? l.lastIndexOf('+', Math.ceil(l.length / 2)) : -1;
    const lines = cut > 0 ? [l.slice(0, cut), l.slice(cut)] : [l];
    lines.forEach((t, j) => parts.push(`<text x="${i * C + C / 2}" y="${(lines.length === 1 ? 19 : 12) + j * 13}" text-anchor="middle">${esc(t)}</text>`));
  });
  ap.forEach((row, r) => row.forEach((t, c) => parts.push(`<text x="${(c + 1) * C + C / 2}" y="${HEADER + r * (C + FOOT) + C + 11}" text-anchor="middle">${esc(t)}</text>`)));
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><style>text{font:11px sans-serif;fill:#222}</style>${parts.join('')}</svg>`);
}
