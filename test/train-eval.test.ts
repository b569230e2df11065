import { describe, it, expect, beforeAll } from 'vitest';
import { copyFile, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManifestWriter, readSourceManifest, type ManifestMetadata, type SourceRow } from '../manifests/index.ts';
import { initBackend } from '../trainer/backend.ts';
import { createModel, presetConfig, type Model } from '../trainer/model.ts';
import { loadDatasetIndex } from '../trainer/data.ts';
import { evaluateModel, predictLogits, formatEvalTable, validationResult } from '../trainer/evaluate.ts';
import { argmaxRows, macroOvrAuc, softmaxRows, accuracy } from '../trainer/metrics.ts';
import { writeToyDataset, type Toy } from './train-fixture.ts';

let toy: Toy;
let model: Model;
const S = 16;

async function writeVariant(name: string, adapter: string, rows: SourceRow[], classNames: string[]): Promise<void> {
  const { metadata } = await readSourceManifest(join(toy.corporaRoot, toy.dataset, 'source'));
  const meta: ManifestMetadata = { ...metadata, dataset: name, class_names: classNames, config: { root: toy.dataRoot, adapter } };
  const w = new ManifestWriter<SourceRow>(join(toy.corporaRoot, name, 'source'), 'source', meta, { prefix: 'source' });
  for (const r of rows) await w.write(r);
  await w.close();
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  toy = await writeToyDataset(await mkdtemp(join(tmpdir(), 'treval-')), { side: 20, counts: { train: 4, val: 2, test: 8 } });
  model = createModel(presetConfig('tiny', 3), 5, { zeroHead: false });
  const test = toy.rows.filter((r) => r.split === 'test');
  // IN-9 layout: every test image in `original`, and a "mixed_next" copy of it under the same file name, whose
  // pixels come from another image (so the predictions differ).
  await mkdir(join(toy.dataRoot, 'mixed'), { recursive: true });
  for (let i = 0; i < test.length; i++) await copyFile(join(toy.dataRoot, test[(i + 3) % test.length].path), join(toy.dataRoot, 'mixed', test[i].path.split('/')[1]));
  const lab = (r: SourceRow, i: number) => ({ ...r, label: i % 3, class_name: `c${i % 3}` });
  const in9: SourceRow[] = [
    ...toy.rows.filter((r) => r.split !== 'test').map((r, i) => lab({ ...r, place: null, group: null }, i)),
    ...test.map((r, i) => lab({ ...r, id: `o${i}`, variant: 'original', group: 'original', place: null }, i)),
    ...test.map((r, i) => lab({ ...r, id: `m${i}`, path: `mixed/${r.path.split('/')[1]}`, variant: 'mixed_next', group: 'mixed_next', place: null }, i)),
  ];
  await writeVariant('toy-in9', 'in9', in9, ['c0', 'c1', 'c2']);
  // CCT layout: boxes only, two test splits, class 2 absent from trans_test.
  const cct: SourceRow[] = [
    ...toy.rows.filter((r) => r.split === 'train').map((r, i) => lab({ ...r, mask_path: null, mask_format: null }, i)),
    ...toy.rows.filter((r) => r.split === 'val').map((r, i) => lab({ ...r, split: 'cis_val', mask_path: null, mask_format: null }, i)),
    ...test.map((r, i) => lab({ ...r, id: `c${i}`, split: 'cis_test', mask_path: null, mask_format: null }, i)),
    ...test.map((r, i) => ({ ...r, id: `t${i}`, split: 'trans_test', mask_path: null, mask_format: null, label: i % 2, class_name: `c${i % 2}` })),
  ];
  await writeVariant('toy-cct', 'cct', cct, ['c0', 'c1', 'c2']);
});

describe('evaluation', () => {
  it('IN-9: per-variant accuracy and the next-class shift, consistent with the logits', async () => {
    const ds = await loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: 'toy-in9', terms: [] });
    const r = await evaluateModel(model, ds, { size: S, batchSize: 5, auprImages: 3, egSamples: 2, seed: 0 });
    const rows = ds.test.get('test')!;
    const logits = await predictLogits(model, ds.root, rows, { size: S, batchSize: 8 });
    const pred = argmaxRows(logits, 3);
    const idx = (v: string) => rows.flatMap((row, i) => (row.variant === v ? [i] : []));
    for (const v of ['original', 'mixed_next']) {
      expect(r.splits.test.variants![v].n).toBe(8);
      expect(r.splits.test.variants![v].acc).toBeCloseTo(accuracy(idx(v).map((i) => pred[i]), idx(v).map((i) => rows[i].label)), 12);
    }
    const p = softmaxRows(logits, 3);
    const meanNext = (v: string) => idx(v).reduce((a, i) => a + p[i * 3 + (rows[i].label + 1) % 3], 0) / 8;
    expect(r.nextClassShift!.n).toBe(8);
    expect(r.nextClassShift!.shift).toBeCloseTo(meanNext('mixed_next') - meanNext('original'), 6);
    expect(r.nextClassShift!.shift).not.toBe(0);
    expect(Object.keys(r.headline)).toEqual(['Original', 'Mixed-Next', 'Next-class shift']);
    expect(Object.keys(r.saliency!.subsets)).toEqual(['test/original', 'test/mixed_next']);
    expect(r.saliency!.subsets['test/original'].inputGradient.n).toBe(3);
    expect(formatEvalTable({ ...r, run: 'x', method: 'orig', seed: 0, checkpoint: 'best', bestEpoch: 1 })).toMatch(/Next-class shift\s+-?\d+\.\d\d pts/);
  });

  it('CCT: macro one-vs-rest AUC per test split, classes absent from a split dropped, box masks for AUPR', async () => {
    const ds = await loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: 'toy-cct', terms: [] });
    expect(ds.val.length).toBe(2);
    const r = await evaluateModel(model, ds, { size: S, batchSize: 8, auprImages: 2, egSamples: 0, seed: 0 });
    for (const split of ['cis_test', 'trans_test']) {
      const rows = ds.test.get(split)!;
      const logits = await predictLogits(model, ds.root, rows, { size: S, batchSize: 8 });
      expect(r.splits[split].auc!.auc).toBeCloseTo(macroOvrAuc(logits, 3, rows.map((x) => x.label)).auc, 12);
    }
    expect(r.splits.trans_test.auc!.dropped).toEqual([2]);
    expect(r.splits.cis_test.auc!.dropped).toEqual([]);
    expect(Object.keys(r.headline).sort()).toEqual(['cis_test AUC', 'trans_test AUC']);
    expect(r.saliency!.subsets.cis_test.inputGradient.n).toBe(2);
    expect(r.saliency!.subsets.cis_test.expectedGradients).toBeNull();
    const val = validationResult(await predictLogits(model, ds.root, ds.val, { size: S, batchSize: 8 }), ds.val, 3, 'auc');
    expect(val.metricName).toBe('auc');
  });
});
