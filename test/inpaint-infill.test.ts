import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { rngFor } from '../manifests/rng.ts';
import { getInfill, type BatchInfill } from '../pipeline/infills/index.ts';
import { PROJECT_ROOT } from '../common/paths.ts';
import { caganCardFile, caganDefaultCard } from '../pipeline/inpaint/infill.ts';
import { exportOnnx } from '../trainer/onnx/export.ts';
import { GraphBuilder } from '../trainer/onnx/graph.ts';

/** out = image·(1 − mask) + 0.5·mask in [−1, 1]: the hole becomes 0.5 → 191.25 → 191 in 8-bit. */
function halfGreyModel(): Uint8Array {
  const g = new GraphBuilder('half');
  const image = g.input('image', 3);
  const mask = g.input('mask', 1);
  const out = g.add(g.mul(image, g.sub(1, mask)), g.mul(mask, 0.5));
  g.output(out);
  return exportOnnx(g.build(), {}, { outputNames: { [out]: 'output' } });
}

const card = {
  name: 'half', file: 'half.onnx', layout: 'separate-nchw', inputs: { image: 'image', mask: 'mask' }, output: { name: 'output', layout: 'nchw' },
  valueRange: [-1, 1], outputRange: [-1, 1], channelOrder: 'RGB', mask: { holeValue: 1, dilate: 0 }, size: { multipleOf: 4 },
  licence: 'test', provenance: 'test/inpaint-infill.test.ts',
};

let dir: string;
let cagan: BatchInfill;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cagan-infill-'));
  await writeFile(join(dir, 'half.onnx'), halfGreyModel());
  await writeFile(join(dir, 'half.card.json'), JSON.stringify(card));
  await writeFile(join(dir, 'wrong.card.json'), JSON.stringify({ ...card, inputs: { image: 'img', mask: 'mask' } }));
  const m = getInfill('cf-cagan');
  expect(m?.mode).toBe('batch');
  cagan = m as BatchInfill;
});

describe('cf-cagan infill (registered by importing pipeline/inpaint/infill.ts)', () => {
  it('is a deterministic CF box-hole method with validated params', () => {
    expect(cagan).toMatchObject({ kind: 'cf', maskKind: 'box', method: 'cagan', deterministic: true });
    expect(cagan.parseParams({})).toEqual({ card: caganDefaultCard(), device: 'cpu', batch: 8 });
    expect(cagan.parseParams({ device: 'cuda', batch: '4' })).toEqual({ card: caganDefaultCard(), device: 'cuda', batch: 4 });
    expect(() => cagan.parseParams({ device: 'gpu' })).toThrow(/device must be one of cpu \| cuda/);
    expect(() => cagan.parseParams({ card: 'x.onnx' })).toThrow(/card must be a path to a <name>.card.json/);
    expect(() => cagan.parseParams({ model: 'x' })).toThrow(/unknown parameter "model"/);
  });

  it('says why it cannot run: no card (how to make one), or a card that does not match its model', async () => {
    expect(await cagan.unavailableReason!(cagan.parseParams({ card: join(dir, 'none.card.json') })))
      .toMatch(/no model card at .*none\.card\.json; run `make inpainter`/);
    const wrong = await cagan.unavailableReason!(cagan.parseParams({ card: join(dir, 'wrong.card.json') }));
    expect(wrong).toMatch(/wrong\.card\.json: invalid model card: the model has no input "img"/);
    expect(await cagan.unavailableReason!(cagan.parseParams({ card: join(dir, 'half.card.json') }))).toBeNull();
  });

  it('fills each item\'s hole through the model and leaves the rest alone', async () => {
    const p = cagan.parseParams({ card: join(dir, 'half.card.json'), batch: 2 });
    const rng = rngFor('cagan-infill-test');
    const items = [[12, 8], [9, 13], [16, 16]].map(([w, h], k) => {
      const image = { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => rng.int(256)) };
      const region = { width: w, height: h, data: new Uint8Array(w * h) };
      for (let y = 1; y < h - 2; y++) for (let x = 2; x < w - 1 - k; x++) region.data[y * w + x] = 1;
      return { image, region, rng: rngFor('item', k), sourceId: String(k), variant: 0 };
    });
    const res = await cagan.applyBatch(items, p);
    expect(res.length).toBe(3);
    res.forEach((r, k) => {
      expect(r.status).toBe('ok');
      if (r.status !== 'ok') return;
      const { image, region } = items[k];
      region.data.forEach((v, i) => {
        const got = Array.from(r.image.data.subarray(i * 3, i * 3 + 3));
        expect(got).toEqual(v ? [191, 191, 191] : Array.from(image.data.subarray(i * 3, i * 3 + 3)));
      });
    });
    await cagan.close!();
  });
});

describe('cf-cagan\'s default card does not depend on the current folder', () => {
  it('is recorded as models/cagan.card.json (so corpus ids stay as they were) and read from the project', () => {
    expect(caganDefaultCard({})).toBe('models/cagan.card.json');
    expect(caganCardFile(caganDefaultCard({}))).toBe(join(PROJECT_ROOT, 'models', 'cagan.card.json'));
    const elsewhere = join(tmpdir(), 'cfgen-models');
    expect(caganDefaultCard({ CFGEN_MODELS_ROOT: elsewhere })).toBe(join(elsewhere, 'cagan.card.json'));
    expect(caganCardFile('/abs/x.card.json')).toBe('/abs/x.card.json');
  });

  it('joins the default methods when generate runs from another folder', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'cfgen-cwd-'));
    const url = (...p: string[]) => pathToFileURL(join(PROJECT_ROOT, ...p)).href;
    await writeFile(join(cwd, 'probe.mjs'), [
      `import { resolveMethods } from ${JSON.stringify(url('pipeline', 'generate', 'run.ts'))};`,
      `await import(${JSON.stringify(url('pipeline', 'inpaint', 'infill.ts'))});`,
      'const methods = await resolveMethods(undefined);',
      'console.log(JSON.stringify(methods.map((m) => m.name)));',
      'for (const m of methods) await m.close?.();',
    ].join('\n'));
    // tsx by absolute path: `--import tsx` would be looked up from the temporary folder
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const env = { ...process.env };
    delete env.CFGEN_MODELS_ROOT;
    const r = spawnSync(process.execPath, ['--import', tsx, 'probe.mjs'], { cwd, env, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toContain('cf-cagan');
  });
});
