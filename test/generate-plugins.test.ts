import { describe, it, expect } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openManifest, type CorpusRow } from '../manifests/index.ts';
import { registerInfill, getInfill, type BatchInfill, type BatchItem, type InfillResult } from '../pipeline/infills/index.ts';
import { GENERATE_DEFAULTS, resolveMethods, runGenerate, type GenerateOptions, createProgress } from '../pipeline/generate/index.ts';
import { H, W, decodeRaw, makeFixture, objectAt, rawImage } from './generate-fixture.ts';

/**
 * The registration API a model infill (the ONNX inpainter, cf-cagan) uses. A fake "model" paints the WHOLE image,
 * outside the hole too, so the test sees the pipeline's composite keep everything outside the hole.
 */
function fakeModel(calls: number[][], ready: () => string | null): BatchInfill {
  return {
    name: 'cf-fakemodel', method: 'fakemodel', kind: 'cf', maskKind: 'box', mode: 'batch', deterministic: false, batchSize: 3,
    description: 'test model', defaults: { value: 7 },
    parseParams: (raw) => ({ value: Number(raw.value ?? 7) }),
    unavailableReason: async () => ready(),
    applyBatch: async (items: BatchItem[], params): Promise<InfillResult[]> => {
      calls.push(items.map((it) => it.variant));
      return items.map((it, k) => (it.sourceId.endsWith('003') && it.variant === 1
        ? { status: 'skipped', reason: 'model declined' }
        : { status: 'ok', image: { width: it.image.width, height: it.image.height, data: new Uint8Array(it.image.data.length).fill(Number(params.value) + k + it.rng.int(2)) } }));
    },
  };
}

const opts = (sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, shardSize: 4, progress: createProgress({ quiet: true }), log: () => {}, ...extra,
});

describe('registered infills', () => {
  it('runs a batched model infill in batches and composites so only the hole changes', async () => {
    const calls: number[][] = [];
    let ready: string | null = 'no model at models/fake.onnx; run `make inpainter`';
    registerInfill(fakeModel(calls, () => ready));
    // not ready: left out of the defaults, refused when asked for by name
    expect((await resolveMethods(undefined)).map((m) => m.name)).not.toContain('cf-fakemodel');
    const fx = await makeFixture(6);
    await expect(runGenerate(opts(fx.sourceDir, { methods: ['cf-fakemodel'] }))).rejects.toThrow(/cf-fakemodel cannot run: no model/);
    ready = null;
    expect((await resolveMethods(undefined)).map((m) => m.name)).toContain('cf-fakemodel');

    const s = await runGenerate(opts(fx.sourceDir, { methods: ['cf-fakemodel', 'cf-grey'], variants: 2 }));
    expect(s.exitCode).toBe(0);
    // shards of 4 rows × 2 variants, batches of at most 3 rows: [4 rows → 3 + 1] then [2 rows]
    expect(calls.map((c) => c.length)).toEqual([6, 2, 4]);
    const dir = join(fx.sourceDir, '..', 'cf-fakemodel');
    const rows: CorpusRow[] = [];
    for await (const r of (await openManifest<CorpusRow>(join(dir, 'manifest'))).rows()) rows.push(r);
    expect(rows.length).toBe(12);
    const skipped = rows.filter((r) => r.status === 'skipped');
    expect(skipped.map((r) => [r.source_id, r.variant, r.error])).toEqual([['img/003', 1, 'model declined']]);
    for (const r of rows.filter((x) => x.status === 'ok')) {
      const i = Number(r.source_id.split('/')[1]);
      const out = await decodeRaw(join(dir, r.image_path!));
      const src = rawImage(i, r.label);
      // box of the ellipse object
      let x0 = W, y0 = H, x1 = -1, y1 = -1;
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (objectAt(i, x, y)) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
      let outsideChanged = 0, insideNotModel = 0;
      for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        const inHole = x >= x0 && x <= x1 && y >= y0 && y <= y1;
        for (let c = 0; c < 3; c++) {
          const v = out[(y * W + x) * 3 + c];
          if (!inHole && v !== src[(y * W + x) * 3 + c]) outsideChanged++;
          if (inHole && (v < 7 || v > 7 + 5 + 1)) insideNotModel++; // value + batch index (< 6) + rng bit
        }
      }
      expect(outsideChanged, r.id).toBe(0);
      expect(insideNotModel, r.id).toBe(0);
    }
  });

  it('loads a sync plugin into the worker threads by its module URL', async () => {
    const fx = await makeFixture(6);
    const plugin = join(fx.tmp, 'plugin.mts'); // .mts: an ES module wherever it lives
    const index = pathToFileURL(join(process.cwd(), 'pipeline', 'infills', 'index.ts')).href;
    await writeFile(plugin, `
import { registerInfill } from ${JSON.stringify(index)};
registerInfill({
  name: 'f-invert', method: 'invert', kind: 'f', maskKind: 'seg', mode: 'sync', deterministic: true,
  description: 'test: invert the background', defaults: {}, parseParams: () => ({}),
  apply: (img, region) => ({ status: 'ok', image: { ...img, data: img.data.map((v, i) => (region.data[Math.floor(i / 3)] ? 255 - v : 0)) } }),
}, { moduleUrl: import.meta.url });
`);
    await import(pathToFileURL(plugin).href);
    expect(getInfill('f-invert')).toBeDefined();
    const s = await runGenerate(opts(fx.sourceDir, { methods: ['f-invert'], workers: 2 }));
    expect(s.counts).toEqual({ ok: 6, skipped: 0, error: 0 });
    const dir = join(fx.sourceDir, '..', 'f-invert');
    const rows: CorpusRow[] = [];
    for await (const r of (await openManifest<CorpusRow>(join(dir, 'manifest'))).rows()) rows.push(r);
    for (const r of rows) {
      const i = Number(r.source_id.split('/')[1]);
      const out = await decodeRaw(join(dir, r.image_path!));
      const src = rawImage(i, r.label);
      let wrong = 0;
      // the plugin zeroes the object, but a plugin is composited: the object must come back untouched
      for (let p = 0; p < W * H; p++) for (let c = 0; c < 3; c++) {
        const want = objectAt(i, p % W, Math.floor(p / W)) ? src[p * 3 + c] : 255 - src[p * 3 + c];
        if (out[p * 3 + c] !== want) wrong++;
      }
      expect(wrong, r.id).toBe(0);
    }
    expect(JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8')).counts.ok).toBe(6);
  });

  it('stops with the worker\'s own error when a worker thread cannot start', async () => {
    const fx = await makeFixture(4);
    const plugin = join(fx.tmp, 'broken.mts');
    const index = pathToFileURL(join(process.cwd(), 'pipeline', 'infills', 'index.ts')).href;
    // registers in this thread, throws when a worker imports it: the pool must report it, not hang
    await writeFile(plugin, `
import { isMainThread } from 'node:worker_threads';
import { registerInfill } from ${JSON.stringify(index)};
if (!isMainThread) throw new Error('plugin broke in the worker');
registerInfill({
  name: 'f-broken', method: 'broken', kind: 'f', maskKind: 'seg', mode: 'sync', deterministic: true,
  description: 'test: cannot load in a worker', defaults: {}, parseParams: () => ({}),
  apply: (img) => ({ status: 'ok', image: img }),
}, { moduleUrl: import.meta.url });
`);
    await import(pathToFileURL(plugin).href);
    await expect(runGenerate(opts(fx.sourceDir, { methods: ['f-broken'], workers: 2 })))
      .rejects.toThrow(/generate worker failed to start: Error: plugin broke in the worker/);
  });
});
