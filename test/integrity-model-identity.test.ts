import { describe, it, expect, beforeAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sha256Hex } from '../manifests/index.ts';
import { GENERATE_DEFAULTS, runGenerate, createProgress, type GenerateOptions } from '../pipeline/generate/index.ts';
import { getInfill, isBuiltinInfill } from '../pipeline/infills/index.ts';
import { loadPlugins } from '../pipeline/plugins.ts';
import { verifyCorpus } from '../pipeline/verify.ts';
import '../pipeline/inpaint/infill.ts';
import { exportOnnx } from '../trainer/onnx/export.ts';
import { GraphBuilder } from '../trainer/onnx/graph.ts';
import { makeFixture } from './generate-fixture.ts';

/**
 * Issue #12, defect 1: a resume must never mix outputs of two models or two plugin versions under one corpus id.
 * The model file, its card and a plugin's source are content-hashed into the corpus config.
 */

const options = (sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, shardSize: 2,
  progress: createProgress({ quiet: true }), log: () => {}, ...extra,
});

/** out = image·(1 − mask) + value·mask in [−1, 1]: a model whose fill colour is `value`. */
function flatModel(value: number): Uint8Array {
  const g = new GraphBuilder('flat');
  const image = g.input('image', 3);
  const mask = g.input('mask', 1);
  const out = g.add(g.mul(image, g.sub(1, mask)), g.mul(mask, value));
  g.output(out);
  return exportOnnx(g.build(), {}, { outputNames: { [out]: 'output' } });
}

const card = {
  name: 'flat', file: 'flat.onnx', layout: 'separate-nchw', inputs: { image: 'image', mask: 'mask' }, output: { name: 'output', layout: 'nchw' },
  valueRange: [-1, 1], outputRange: [-1, 1], channelOrder: 'RGB', mask: { holeValue: 1, dilate: 0 }, size: { multipleOf: 4 },
  licence: 'test', provenance: 'test/integrity-model-identity.test.ts',
};

describe('cf-cagan: the model and its card are part of the corpus config', () => {
  let models: string;
  beforeAll(async () => {
    models = await mkdtemp(join(tmpdir(), 'cagan-id-'));
  });

  it('refuses to resume after the card or the model changed (no --force), and --force gives another corpus id', async () => {
    const cardFile = join(models, 'flat.card.json');
    const onnx = join(models, 'flat.onnx');
    await writeFile(onnx, flatModel(0.5));
    await writeFile(cardFile, JSON.stringify(card));
    const fx = await makeFixture(4);
    const o = options(fx.sourceDir, { methods: ['cf-cagan'], params: { 'cf-cagan': { card: cardFile } } });
    const first = await runGenerate(o);
    expect(first.counts.ok).toBe(4);
    const dir = join(fx.sourceDir, '..', 'cf-cagan');
    const info = JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8'));
    expect(info.config.files_sha256).toEqual({ card: sha256Hex(await readFile(cardFile)), model: sha256Hex(await readFile(onnx)) });

    // the same model and card: a plain resume
    const again = await runGenerate(o);
    expect(again.methods[0].resumedShards).toBe(2);
    expect(again.methods[0].corpusId).toBe(first.methods[0].corpusId);

    // `make inpainter` retrains in place: same card, other weights
    await writeFile(onnx, flatModel(-0.5));
    await expect(runGenerate(o)).rejects.toThrow(/different configuration[\s\S]*--force/);
    const retrained = await runGenerate({ ...o, force: true });
    expect(retrained.methods[0].resumedShards).toBe(0);
    expect(retrained.methods[0].corpusId).not.toBe(first.methods[0].corpusId);
    expect((await verifyCorpus(dir)).ok).toBe(true);

    // an edited card (even a field that does not change the pixels) is a new configuration too
    await writeFile(cardFile, JSON.stringify({ ...card, provenance: 'edited' }));
    await expect(runGenerate(o)).rejects.toThrow(/different configuration[\s\S]*--force/);
    await (getInfill('cf-cagan') as { close?: () => Promise<void> }).close?.();
  });
});

describe('plugins: their source is in the corpus config; replacing a built-in needs consent', () => {
  it('records the plugin module and the SHA-256 of its source, and refuses to resume once the source changed', async () => {
    const fx = await makeFixture(4);
    const plugin = join(fx.tmp, 'invert.mts');
    const index = pathToFileURL(join(process.cwd(), 'pipeline', 'infills', 'index.ts')).href;
    const source = `
import { registerInfill } from ${JSON.stringify(index)};
registerInfill({
  name: 'f-invertid', method: 'invertid', kind: 'f', maskKind: 'seg', mode: 'sync', deterministic: true,
  description: 'test: invert the background', defaults: {}, parseParams: () => ({}),
  apply: (img, region) => ({ status: 'ok', image: { ...img, data: img.data.map((v, i) => (region.data[Math.floor(i / 3)] ? 255 - v : v)) } }),
});
`;
    await writeFile(plugin, source);
    const loaded = await loadPlugins([plugin]);
    expect(loaded).toEqual([{ file: plugin, registered: ['f-invertid'], replaced: [] }]);
    const o = options(fx.sourceDir, { methods: ['f-invertid'], workers: 2 });
    const s = await runGenerate(o); // workers import the plugin too, although it passed no moduleUrl
    expect(s.counts).toEqual({ ok: 4, skipped: 0, error: 0 });
    const info = JSON.parse(await readFile(join(fx.sourceDir, '..', 'f-invertid', 'corpus.json'), 'utf8'));
    expect(info.config.plugin).toEqual({ module: plugin, sha256: sha256Hex(source) });
    await writeFile(plugin, `${source}// edited\n`);
    await expect(runGenerate(o)).rejects.toThrow(/different configuration[\s\S]*--force/);
  });

  it('refuses a plugin that re-registers a built-in name (and leaves the built-in in place) unless allowed', async () => {
    const fx = await makeFixture(4);
    const builtinGrey = await runGenerate(options(fx.sourceDir, { methods: ['cf-grey'] }));
    const plugin = join(fx.tmp, 'grey.mts');
    const index = pathToFileURL(join(process.cwd(), 'pipeline', 'infills', 'index.ts')).href;
    await writeFile(plugin, `
import { registerInfill, greyInfill } from ${JSON.stringify(index)};
registerInfill({
  name: 'cf-grey', method: 'grey', kind: 'cf', maskKind: 'box', mode: 'sync', deterministic: true,
  description: 'test: a different grey', defaults: {}, parseParams: () => ({ value: 100 }),
  apply: (img, region) => ({ status: 'ok', image: greyInfill(img, region, 100) }),
}, { moduleUrl: import.meta.url });
`);
    const original = getInfill('cf-grey');
    await expect(loadPlugins([plugin])).rejects.toThrow(/replaces the built-in method cf-grey[\s\S]*--allow-plugin-override/);
    expect(getInfill('cf-grey')).toBe(original);
    expect(isBuiltinInfill('cf-grey')).toBe(true);

    // allowed on purpose: the corpus config records the plugin, so it can never pass for the built-in's corpus.
    // (A copy under another name: the module above is cached, and importing it again would register nothing.)
    const fx2 = await makeFixture(4);
    const copy = join(fx.tmp, 'grey2.mts');
    await writeFile(copy, await readFile(plugin));
    const loaded = await loadPlugins([copy], { allowOverride: true });
    expect(loaded[0].replaced).toEqual(['cf-grey']);
    try {
      const s = await runGenerate(options(fx2.sourceDir, { methods: ['cf-grey'] }));
      const info = JSON.parse(await readFile(join(fx2.sourceDir, '..', 'cf-grey', 'corpus.json'), 'utf8'));
      expect(info.config.plugin.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(s.methods[0].corpusId).not.toBe(builtinGrey.methods[0].corpusId);
    } finally {
      const { registerInfill } = await import('../pipeline/infills/index.ts');
      registerInfill(original!);
    }
  });
});

describe('a .ts plugin outside the repository, loaded as CommonJS', () => {
  it('registers into the one registry (no second copy), also in worker threads', async () => {
    const fx = await makeFixture(4);
    // a folder with no package.json up the tree: tsx loads the plugin as CommonJS, with its own copy of index.ts
    const dir = await mkdtemp(join(tmpdir(), 'cfgen-cjs-plugin-'));
    const plugin = join(dir, 'plugin.ts');
    await writeFile(plugin, `
import { registerInfill } from ${JSON.stringify(join(process.cwd(), 'pipeline', 'infills', 'index.ts'))};
registerInfill({
  name: 'f-cjsplugin', method: 'cjsplugin', kind: 'f', maskKind: 'seg', mode: 'sync', deterministic: true,
  description: 'test: background to black', defaults: {}, parseParams: () => ({}),
  apply: (img) => ({ status: 'ok', image: { ...img, data: new Uint8Array(img.data.length) } }),
});
`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'cfgen.ts', 'generate', '--source', fx.sourceDir, '--methods', 'f-cjsplugin', '--plugin', plugin, '--workers', '2', '--quiet'], { cwd: process.cwd(), encoding: 'utf8' });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/f-cjsplugin\s+ok 4 {2}skipped 0 {2}errors 0/);
  });
});
