import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { rngFor } from '../manifests/rng.ts';
import { getInfill, type BatchInfill } from '../pipeline/infills/index.ts';
import { CAGAN_DEFAULT_CARD } from '../pipeline/inpaint/infill.ts';
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
    expect(cagan.parseParams({})).toEqual({ card: CAGAN_DEFAULT_CARD, device: 'cpu', batch: 8 });
    expect(cagan.parseParams({ device: 'cuda', batch: '4' })).toEqual({ card: CAGAN_DEFAULT_CARD, device: 'cuda', batch: 4 });
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
