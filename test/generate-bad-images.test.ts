import { describe, it, expect, beforeAll } from 'vitest';
import sharp from 'sharp';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openManifest, type CorpusRow, type SourceRow } from '../manifests/index.ts';
import { GENERATE_DEFAULTS, runGenerate, type GenerateOptions, type GenerateSummary, createProgress } from '../pipeline/generate/index.ts';
import { H, W, baseRow, decodeRaw, png, rawImage, rawMask, writeSource } from './generate-fixture.ts';

/**
 * Every kind of bad input gets the right status and a reason, and the run goes on. Rows 0–3 are good images (two
 * per class, so Mixed-Rand has donors); the rest are one case each.
 */
interface Case {
  name: string;
  write: (root: string, row: SourceRow) => Promise<void>;
  edit?: (row: SourceRow) => void;
  /** expected status per method */
  expect: Partial<Record<string, 'ok' | 'skipped' | 'error'>> & { all?: 'ok' | 'skipped' | 'error' };
  reason?: RegExp;
}

const rgb = (i: number) => rawImage(i, i % 2);
const mask = async (root: string, i: number, buf = rawMask(i)) => writeFile(join(root, 'masks', `${i}.png`), await png(buf, W, H, 1));

const CASES: Case[] = [
  {
    name: 'truncated JPEG', reason: /premature end|cannot decode/i, expect: { all: 'error' },
    write: async (root, r) => {
      const jpg = await sharp(rgb(4), { raw: { width: W, height: H, channels: 3 } }).jpeg().toBuffer();
      await writeFile(join(root, r.path), jpg.subarray(0, Math.floor(jpg.length / 2)));
    },
    edit: (r) => { r.path = r.path.replace('.png', '.jpg'); },
  },
  {
    name: 'GIF named .jpg', expect: { all: 'ok' },
    write: async (root, r) => writeFile(join(root, r.path), await sharp(rgb(5), { raw: { width: W, height: H, channels: 3 } }).gif().toBuffer()),
    edit: (r) => { r.path = r.path.replace('.png', '.jpg'); },
  },
  {
    name: 'RGBA PNG', expect: { all: 'ok' },
    write: async (root, r) => {
      const src = rgb(6), rgba = Buffer.alloc(W * H * 4);
      for (let p = 0; p < W * H; p++) { rgba.set(src.subarray(p * 3, p * 3 + 3), p * 4); rgba[p * 4 + 3] = p % 3 ? 255 : 40; }
      await writeFile(join(root, r.path), await png(rgba, W, H, 4));
    },
  },
  {
    name: 'grayscale PNG', expect: { all: 'ok' },
    write: async (root, r) => {
      const g = Buffer.alloc(W * H);
      for (let p = 0; p < g.length; p++) g[p] = (p * 7) % 256;
      await writeFile(join(root, r.path), await sharp(g, { raw: { width: W, height: H, channels: 1 } }).toColourspace('b-w').png().toBuffer());
    },
  },
  {
    name: 'CMYK JPEG', expect: { all: 'ok' },
    write: async (root, r) => writeFile(join(root, r.path), await sharp(rgb(8), { raw: { width: W, height: H, channels: 3 } }).toColourspace('cmyk').jpeg().toBuffer()),
    edit: (r) => { r.path = r.path.replace('.png', '.jpg'); },
  },
  {
    name: '16-bit PNG', expect: { all: 'ok' },
    write: async (root, r) => writeFile(join(root, r.path), await sharp(rgb(9), { raw: { width: W, height: H, channels: 3 } }).toColourspace('rgb16').png().toBuffer()),
  },
  { name: 'zero-byte file', reason: /empty file/, expect: { all: 'error' }, write: async (root, r) => writeFile(join(root, r.path), Buffer.alloc(0)) },
  { name: 'missing file', reason: /not found/, expect: { all: 'error' }, write: async () => {} },
  {
    name: 'empty mask', reason: /empty mask/, expect: { all: 'skipped' },
    write: async (root, r) => { await writeFile(join(root, r.path), await png(rgb(12), W, H, 3)); await mask(root, 12, Buffer.alloc(W * H)); },
  },
  {
    name: 'mask covering everything', reason: /whole image|no background/,
    expect: { 'cf-grey': 'ok', 'cf-shuffle': 'ok', 'cf-tile': 'skipped', 'f-random': 'skipped', 'f-mixed-rand': 'skipped' },
    write: async (root, r) => { await writeFile(join(root, r.path), await png(rgb(13), W, H, 3)); await mask(root, 13, Buffer.alloc(W * H, 255)); },
  },
  {
    name: 'box outside the image', reason: /outside the 24x20 image/, expect: { all: 'error' },
    write: async (root, r) => writeFile(join(root, r.path), await png(rgb(14), W, H, 3)),
    edit: (r) => { r.mask_path = null; r.mask_format = null; r.boxes = [30, 2, 5, 5]; },
  },
  {
    name: 'box-only row', expect: { all: 'ok' },
    write: async (root, r) => writeFile(join(root, r.path), await png(rgb(15), W, H, 3)),
    edit: (r) => { r.mask_path = null; r.mask_format = null; r.boxes = [-3, 4, 8.5, 6]; },
  },
  {
    name: 'mask of another size', reason: /mask .* is 12x10 but image/, expect: { all: 'error' },
    write: async (root, r) => { await writeFile(join(root, r.path), await png(rgb(16), W, H, 3)); await writeFile(join(root, 'masks', '16.png'), await png(Buffer.alloc(120, 255), 12, 10, 1)); },
  },
  {
    name: 'source row already in error', reason: /source row has status error/, expect: { all: 'skipped' },
    write: async () => {}, edit: (r) => { r.status = 'error'; r.error = 'unreadable annotation'; },
  },
];

const METHODS = ['cf-grey', 'cf-shuffle', 'cf-tile', 'f-random', 'f-mixed-rand'];
const FIRST = 4;

describe('bad inputs', () => {
  let tmp: string, root: string, sourceDir: string, summary: GenerateSummary;
  const rows = new Map<string, CorpusRow[]>();
  const opts = (extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
    ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, methods: METHODS, shardSize: 8,
    progress: createProgress({ quiet: true }), log: () => {}, ...extra,
  });

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'genbad-'));
    root = join(tmp, 'data');
    await mkdir(join(root, 'images'), { recursive: true });
    await mkdir(join(root, 'masks'), { recursive: true });
    const src: SourceRow[] = [];
    for (let i = 0; i < FIRST; i++) {
      await writeFile(join(root, 'images', `${i}.png`), await png(rgb(i), W, H, 3));
      await mask(root, i);
      src.push(baseRow(i, 'train', i % 2));
    }
    for (let k = 0; k < CASES.length; k++) {
      const i = FIRST + k;
      const r = baseRow(i, 'train', i % 2);
      await mask(root, i);
      CASES[k].edit?.(r);
      await CASES[k].write(root, r);
      src.push(r);
    }
    sourceDir = await writeSource(tmp, root, src);
    summary = await runGenerate(opts());
    for (const m of METHODS) {
      const list: CorpusRow[] = [];
      for await (const r of (await openManifest<CorpusRow>(join(tmp, 'corpora', 'toy', m, 'manifest'))).rows()) list.push(r);
      rows.set(m, list);
    }
  });

  const rowOf = (m: string, k: number) => rows.get(m)!.find((r) => r.source_id === `img/${String(FIRST + k).padStart(3, '0')}`)!;

  CASES.forEach((c, k) => {
    it(c.name, () => {
      for (const m of METHODS) {
        const want = c.expect[m] ?? c.expect.all ?? 'ok';
        const r = rowOf(m, k);
        expect(r.status, `${c.name} / ${m}: ${r.error}`).toBe(want);
        if (want === 'ok') {
          expect(r.error).toBeNull();
          expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
        } else {
          expect(r.image_path).toBeNull();
          expect(r.error, `${c.name} / ${m}`).toMatch(c.reason ?? /./);
        }
      }
    });
  });

  it('decodes odd formats to the pixels a PIL .convert("RGB") gives (outside the hole)', async () => {
    const dir = join(tmp, 'corpora', 'toy', 'cf-grey');
    const outside = (r: CorpusRow, f: (p: number, c: number, v: number) => void) => decodeRaw(join(dir, r.image_path!)).then((buf) => {
      for (let p = 0; p < W * H; p++) if (buf[p * 3] !== 128 || buf[p * 3 + 1] !== 128) for (let c = 0; c < 3; c++) f(p, c, buf[p * 3 + c]);
    });
    const rgba = rgb(6);
    await outside(rowOf('cf-grey', 2), (p, c, v) => expect(v).toBe(rgba[p * 3 + c])); // alpha dropped, not blended
    await outside(rowOf('cf-grey', 3), (p, _c, v) => expect(v).toBe((p * 7) % 256)); // grey replicated
    const deep = rgb(9);
    await outside(rowOf('cf-grey', 5), (p, c, v) => expect(v).toBe(deep[p * 3 + c])); // 16-bit scaled back to 8
    const cmyk = rgb(8);
    let err = 0, n = 0;
    await outside(rowOf('cf-grey', 4), (p, c, v) => { err += Math.abs(v - cmyk[p * 3 + c]); n++; });
    expect(err / n).toBeLessThan(20); // CMYK round trip through a JPEG: close, not exact
    expect(rowOf('f-random', 11).mask_kind).toBe('box');
  });

  it('applies the exit policy: error rate vs --max-error-rate, and --strict', async () => {
    // 5 error source rows out of 18, each for every method: rate 5/18 ≈ 0.28
    expect(summary.counts.error).toBe(5 * METHODS.length);
    expect(summary.exitCode).toBe(1);
    expect(summary.exitReason).toMatch(/error rate 27\.78% exceeds --max-error-rate 5\.00%/);
    const lenient = await runGenerate(opts({ maxErrorRate: 0.5 }));
    expect(lenient.exitCode).toBe(0);
    expect(lenient.rowsProcessed).toBe(0); // everything resumed
    const strict = await runGenerate(opts({ maxErrorRate: 0.5, strict: true }));
    expect(strict.exitCode).toBe(1);
  });

  it('skips Mixed-Rand with a reason when only one class is available', async () => {
    const t = await mkdtemp(join(tmpdir(), 'genone-'));
    await mkdir(join(t, 'data', 'images'), { recursive: true });
    await mkdir(join(t, 'data', 'masks'), { recursive: true });
    const src: SourceRow[] = [];
    for (const i of [0, 2]) {
      await writeFile(join(t, 'data', 'images', `${i}.png`), await png(rgb(i), W, H, 3));
      await writeFile(join(t, 'data', 'masks', `${i}.png`), await png(rawMask(i), W, H, 1));
      src.push(baseRow(i, 'train', 0));
    }
    const dir = await writeSource(t, join(t, 'data'), src);
    const s = await runGenerate({ ...opts(), sourceDir: dir, methods: ['f-mixed-rand'] });
    expect(s.counts).toEqual({ ok: 0, skipped: 2, error: 0 });
    const list: CorpusRow[] = [];
    for await (const r of (await openManifest<CorpusRow>(join(t, 'corpora', 'toy', 'f-mixed-rand', 'manifest'))).rows()) list.push(r);
    expect(list.every((r) => /no image of another class/.test(r.error ?? ''))).toBe(true);
  });
});
