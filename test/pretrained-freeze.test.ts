import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../trainer/backend.ts';
import { createModel, parameterSpecs, presetConfig, type Model, type ModelConfig } from '../trainer/model.ts';
import { loadModel } from '../trainer/checkpoint.ts';
import { applyFreeze, firstTrainableIndex } from '../trainer/freeze.ts';
import { train } from '../trainer/train.ts';
import { parseMethod } from '../trainer/method.ts';
import { makeOptimizer } from '../trainer/optimizer-state.ts';
import { trainStep } from '../trainer/step.ts';
import { syntheticBatch } from '../bench/synthetic-batch.ts';
import { writeNpz } from './pretrained-fixture.ts';
import { writeToyDataset, type Toy } from './train-fixture.ts';

const R50 = parameterSpecs(presetConfig('r50x1', 2)).map((s) => s.name);
const TINY_BIT: ModelConfig = {
  name: 'resnetv2-11', rootWidth: 8, widths: [16, 32], depths: [1, 2], bottleneck: true, groups: 32, numClasses: 4,
  rootPool: true, rootKernel: 7, rootStride: 2, wsEps: 1e-10, gnEps: 1e-5,
};
const values = (m: Model) => m.variables.map((v) => Array.from(v.dataSync()));

beforeAll(async () => { await initBackend({ backend: 'wasm', log: () => undefined }); });

describe('--freeze <n|prefix>', () => {
  it('n freezes the root and the first n stages; a prefix freezes everything before it', () => {
    expect(R50[firstTrainableIndex(R50, '3')]).toBe('resnet/block4/unit01/a/group_norm/gamma');
    expect(R50[firstTrainableIndex(R50, '4')]).toBe('resnet/group_norm/gamma');
    expect(firstTrainableIndex(R50, '0')).toBe(0);
    expect(firstTrainableIndex(R50, 'resnet/block4')).toBe(firstTrainableIndex(R50, '3'));
    expect(R50[firstTrainableIndex(R50, 'resnet/head')]).toBe('resnet/head/conv2d/kernel');
    expect(() => firstTrainableIndex(R50, '5')).toThrow(/has 4 stages/);
    expect(() => firstTrainableIndex(R50, 'resnet/block9')).toThrow(/no parameter name starts with "resnet\/block9"/);
  });

  it('a step moves only the trainable weights, with every loss (input gradients still pass the frozen layers)', () => {
    const m = createModel(TINY_BIT, 1, { zeroHead: false });
    const line = applyFreeze(m, '1');
    expect(line).toMatch(/training from resnet\/block2\/unit01/);
    const first = firstTrainableIndex(m.paramNames, '1');
    const before = values(m);
    const batch = syntheticBatch('freeze', { size: 32, batch: 2, classes: 4, withGenerated: true });
    const st = trainStep({ model: m, optimizer: makeOptimizer({ optimizer: 'sgd', lr: 0.1, momentum: 0.9 }), method: parseMethod('cf-x+f-y+sal@1+f-fgsm@0.3'), cfLoss: 'logp', numClasses: 4, clipNorm: 1, weightDecay: 1e-4 }, batch, 0);
    expect(st.skipped).toBe(false);
    expect(st.terms.sal).toBeGreaterThan(0);
    const after = values(m);
    after.forEach((w, i) => {
      if (i < first) expect(w).toEqual(before[i]);
      else expect(w.some((v, j) => v !== before[i][j])).toBe(true);
    });
    m.dispose();
  });

  it('r50x1 trains at 64 and 128 px (frozen except the head)', () => {
    const m = createModel(presetConfig('r50x1', 2), 0);
    applyFreeze(m, 'resnet/head');
    for (const size of [64, 128]) {
      const batch = syntheticBatch(`r50-${size}`, { size, batch: 1, classes: 2, withGenerated: false });
      const st = trainStep({ model: m, optimizer: makeOptimizer({ optimizer: 'sgd', lr: 0.01, momentum: 0 }), method: parseMethod('orig'), cfLoss: 'logp', numClasses: 2, clipNorm: 1, weightDecay: 0 }, batch, 0);
      expect(Number.isFinite(st.total)).toBe(true);
      expect(st.gradNorm).toBeGreaterThan(0);
    }
    m.dispose();
  });
});

describe('train --init <BiT .npz> --freeze (end to end)', () => {
  let toy: Toy;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pretrained-run-'));
    toy = await writeToyDataset(dir, { side: 40, counts: { train: 4, val: 2, test: 2 } });
    const src = createModel(TINY_BIT, 7, { zeroHead: false });
    await writeNpz(join(dir, 'BiT-tiny.npz'), src.paramNames.map((name, i) => ({ name, shape: src.variables[i].shape, values: src.variables[i].dataSync() as Float32Array })));
    src.dispose();
  });

  it('takes the file\'s architecture, replaces the 4-class head with a 2-class one, freezes, records it all', async () => {
    const logs: string[] = [];
    const r = await train({
      method: 'orig', dataset: toy.dataset, corporaRoot: toy.corporaRoot, runsRoot: join(dir, 'runs'), model: 'small', size: 32, batch: 2,
      epochs: 1, maxSteps: 2, backend: 'wasm', evaluate: false, init: join(dir, 'BiT-tiny.npz'), freeze: '1', log: (l) => logs.push(l), progress: 'off',
    });
    const log = logs.join('\n');
    expect(log).toMatch(/architecture from .*BiT-tiny\.npz: resnetv2-11 .* it replaces --model small/);
    expect(log).toMatch(/head replaced: the file's has 4 classes, this run 2/);
    expect(log).toMatch(/--freeze 1: .* training from resnet\/block2\/unit01/);
    const cfg = JSON.parse(await readFile(join(r.runDir, 'config.json'), 'utf8'));
    expect(cfg.model).toMatchObject({ widths: [16, 32], depths: [1, 2], numClasses: 2, wsEps: 1e-10 });
    expect(cfg.hyper.freeze).toBe('1');
    // frozen: the root is still the file's after two steps
    const last = await loadModel(join(r.runDir, 'best'));
    const src = createModel(TINY_BIT, 7, { zeroHead: false });
    expect(Array.from(last.variables[0].dataSync())).toEqual(Array.from(src.variables[0].dataSync()));
    src.dispose(); last.dispose();
  });
});
