/**
 * Issue #12, training side: the validation set is no longer decoded once and held whole in memory. A byte budget
 * bounds what is kept between epochs; the rest streams from disk in the same batches, so validation computes the
 * same logits whatever the budget.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalBatches, loadDatasetIndex, type DatasetIndex } from '../trainer/data.ts';
import { ValidationSet } from '../trainer/validation.ts';
import { writeToyDataset } from './train-fixture.ts';

let index: DatasetIndex;
const S = 16, BATCH = 4, BATCH_BYTES = BATCH * S * S * 3 * 4;

async function pass(set: ValidationSet): Promise<{ x: number[]; sizes: number[] }> {
  const x: number[] = [], sizes: number[] = [];
  for await (const b of set.batches()) { x.push(...b.x); sizes.push(b.n); }
  return { x, sizes };
}

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'integ-val-'));
  const toy = await writeToyDataset(dir, { side: 20, counts: { train: 4, val: 10, test: 2 } });
  index = await loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: toy.dataset, terms: [] });
  expect(index.val.length).toBe(10);
});

describe('validation images: a bounded cache, the rest streamed', () => {
  it('keeps at most the budget between epochs, and every pass yields the images of a plain decode, in the same batches', async () => {
    const plain: number[] = [], plainSizes: number[] = [];
    for await (const b of evalBatches(index.root, index.val, { size: S, batchSize: BATCH })) { plain.push(...b.x); plainSizes.push(b.n); }
    expect(plainSizes).toEqual([4, 4, 2]);
    for (const [budget, kept] of [[0, 0], [BATCH_BYTES, BATCH_BYTES], [BATCH_BYTES * 2 + 10, BATCH_BYTES * 2], [2 ** 30, 10 * S * S * 3 * 4]] as const) {
      const set = new ValidationSet(index.root, index.val, { size: S, batchSize: BATCH, cacheBytes: budget });
      for (let epoch = 0; epoch < 3; epoch++) {
        const got = await pass(set);
        expect(got.sizes, `budget ${budget}, pass ${epoch}`).toEqual(plainSizes);
        expect(got.x.length).toBe(plain.length);
        expect(got.x.every((v, i) => Object.is(v, plain[i])), `budget ${budget}, pass ${epoch}: same pixels`).toBe(true);
        expect(set.cachedBytes).toBe(kept);
      }
    }
  });

  it('a first pass cut short does not keep a half-filled cache twice', async () => {
    const set = new ValidationSet(index.root, index.val, { size: S, batchSize: BATCH, cacheBytes: 2 ** 30 });
    for await (const _ of set.batches()) break;
    const again = await pass(set);
    expect(again.sizes).toEqual([4, 4, 2]);
    expect(set.cachedBytes).toBe(10 * S * S * 3 * 4);
  });
});
