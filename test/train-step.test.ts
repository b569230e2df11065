import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../trainer/backend.ts';
import { createModel, presetConfig, type Model } from '../trainer/model.ts';
import { loadDatasetIndex, trainBatches, type DatasetIndex, type TrainBatch } from '../trainer/data.ts';
import { parseMethod } from '../trainer/method.ts';
import { saliencyPenalty } from '../trainer/losses.ts';
import { makeOptimizer, saveOptimizerState, loadOptimizerState } from '../trainer/optimizer-state.ts';
import { trainStep, type StepContext } from '../trainer/step.ts';
import { writeToyDataset } from './train-fixture.ts';

let index: DatasetIndex;
let batch: TrainBatch;
const S = 16;

function model(seed = 1): Model {
  // He-initialised head, so the logits (and every loss term) are not trivially symmetric
  return createModel(presetConfig('tiny', 2), seed, { zeroHead: false });
}

function ctxOf(m: Model, method: string, over: Partial<StepContext> = {}): StepContext {
  return { model: m, optimizer: makeOptimizer({ optimizer: 'sgd', lr: 0, momentum: 0 }), method: parseMethod(method), cfLoss: 'logp', numClasses: 2, clipNorm: 1e9, weightDecay: 0, ...over };
}

function weights(m: Model): Float32Array[] {
  return m.variables.map((v) => v.dataSync().slice() as Float32Array);
}

/** log-softmax of one row of logits, in float64 */
function logSoftmax(z: ArrayLike<number>): number[] {
  const m = Math.max(...Array.from(z));
  const lse = m + Math.log(Array.from(z).reduce((a, v) => a + Math.exp(v - m), 0));
  return Array.from(z, (v) => v - lse);
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  const toy = await writeToyDataset(await mkdtemp(join(tmpdir(), 'trstep-')), { corpora: ['cf-tile', 'f-random'], side: 18, counts: { train: 6, val: 2, test: 2 } });
  index = await loadDatasetIndex({ corporaRoot: toy.corporaRoot, dataset: toy.dataset, terms: [...parseMethod('cf-tile+f-random').cf, ...parseMethod('cf-tile+f-random').f] });
  for await (const b of trainBatches(index, 0, { batchSize: 4, size: S, seed: 0, withMasks: true })) { batch = b; break; }
});

describe('train step', () => {
  it('total = (Σ CE(originals) + Σ −log(1−p_y)(CF) + Σ CE(F)) / number of images', () => {
    const m = model();
    const logits = tf.tidy(() => m.apply(tf.tensor4d(batch.x, [batch.n, S, S, 3]))).arraySync() as number[][];
    let sum = 0;
    for (let i = 0; i < batch.n; i++) {
      const lp = logSoftmax(logits[i]);
      const y = batch.labels[i];
      sum += batch.role[i] === 1 ? -Math.log(1 - Math.exp(lp[y])) : -lp[y];
    }
    expect(batch.n).toBe(12);
    const st = trainStep(ctxOf(m, 'cf-tile+f-random'), batch, 0);
    expect(st.nImages).toBe(12);
    expect(st.counts).toEqual({ orig: 4, cf: 4, f: 4, fgsm: 0, sal: 0 });
    expect(st.total).toBeCloseTo(sum / 12, 4);
    expect(st.terms.ce + st.terms.cf + st.terms.f).toBeCloseTo(sum, 3);
    m.dispose();
  });

  it('sal adds λ·Σ per-image penalties on the originals, from the fused saliency pass', () => {
    const m = model();
    const origOnly: TrainBatch = { ...batch, n: batch.nOrig, x: batch.x.subarray(0, batch.nOrig * S * S * 3), labels: batch.labels.subarray(0, batch.nOrig), role: batch.role.subarray(0, batch.nOrig) };
    const expected = tf.tidy(() => {
      const x = tf.tensor4d(origOnly.x, [4, S, S, 3]);
      const bg = tf.sub(1, tf.tensor4d(batch.objMask!, [4, S, S, 1])) as tf.Tensor4D;
      return Array.from(saliencyPenalty((t) => m.apply(t), x, tf.tensor1d(origOnly.labels, 'int32'), bg).dataSync());
    });
    const logits = tf.tidy(() => m.apply(tf.tensor4d(origOnly.x, [4, S, S, 3]))).arraySync() as number[][];
    const ce = logits.reduce((a, z, i) => a - logSoftmax(z)[origOnly.labels[i]], 0);
    const st = trainStep(ctxOf(m, 'sal@3'), origOnly, 0);
    expect(expected[0] + expected[1] + expected[2] + expected[3]).toBeGreaterThan(0);
    const all = expected.reduce((a, b) => a + b, 0);
    expect(st.terms.sal).toBeCloseTo(3 * all, 5);
    expect(st.terms.ce).toBeCloseTo(ce, 4);
    expect(st.total).toBeCloseTo((ce + 3 * all) / 4, 4);
    // an original without a usable mask gets no penalty, and still trains with CE
    const partial = trainStep(ctxOf(m, 'sal@3'), { ...origOnly, maskUsable: Uint8Array.from([1, 0, 1, 1]) }, 0);
    expect(partial.terms.sal).toBeCloseTo(3 * (all - expected[1]), 5);
    expect(partial.counts.sal).toBe(3);
    m.dispose();
  });

  it('FGSM adds one adversarial image per original with a usable mask, trained with CE', () => {
    const m = model();
    const st = trainStep(ctxOf(m, 'f-fgsm@0.3'), batch, 7);
    expect(st.counts.fgsm).toBe(4);
    expect(st.nImages).toBe(batch.n + 4);
    expect(st.terms.fgsm).toBeGreaterThan(0);
    m.dispose();
  });

  it('clips the update to global norm clipNorm and reports the raw norm', () => {
    const a = model(), b = model();
    const before = weights(a);
    // unclipped: Δw = −lr·g, so |Δw| = lr·|g|
    const st = trainStep(ctxOf(a, 'orig', { optimizer: makeOptimizer({ optimizer: 'sgd', lr: 1e-3, momentum: 0 }) }), batch, 0);
    const normOf = (w0: Float32Array[], w1: Float32Array[]) => Math.sqrt(w0.reduce((s, w, i) => s + w.reduce((t, v, j) => t + (v - w1[i][j]) ** 2, 0), 0));
    expect(st.clipped).toBe(false);
    expect(normOf(before, weights(a)) / 1e-3).toBeCloseTo(st.gradNorm, 2);
    // clipped to 1e-4 with lr 1: |Δw| = 1e-4 exactly
    const st2 = trainStep(ctxOf(b, 'orig', { optimizer: makeOptimizer({ optimizer: 'sgd', lr: 1, momentum: 0 }), clipNorm: 1e-4 }), batch, 0);
    expect(st2.clipped).toBe(true);
    expect(normOf(before, weights(b))).toBeCloseTo(1e-4, 7);
    a.dispose(); b.dispose();
  });

  it('weight decay adds wd·w to the gradient (L2, PyTorch style)', () => {
    const a = model(), b = model();
    const w0 = weights(a);
    const opt = () => makeOptimizer({ optimizer: 'sgd', lr: 0.1, momentum: 0 });
    trainStep(ctxOf(a, 'orig', { optimizer: opt() }), batch, 0);
    trainStep(ctxOf(b, 'orig', { optimizer: opt(), weightDecay: 0.5 }), batch, 0);
    const wa = weights(a), wb = weights(b);
    for (let i = 0; i < w0.length; i++) for (let j = 0; j < w0[i].length; j += 7) expect(wb[i][j] - wa[i][j]).toBeCloseTo(-0.1 * 0.5 * w0[i][j], 5);
    a.dispose(); b.dispose();
  });

  it('leaves no tensors behind, whatever the terms', () => {
    // the second spec takes the fused saliency path (no mixup), the first the separate one
    for (const spec of ['cf-tile+f-random+sal+f-fgsm@0.2+mixup+ls', 'cf-tile+f-random+sal+f-fgsm']) {
      const m = model();
      const ctx = ctxOf(m, spec, { optimizer: makeOptimizer({ optimizer: 'adam', lr: 1e-3, momentum: 0.9 }) });
      trainStep(ctx, batch, 1); // creates the optimizer's slots
      const n0 = tf.memory().numTensors;
      for (let s = 2; s < 4; s++) {
        const st = trainStep(ctx, batch, s);
        expect(Number.isFinite(st.total)).toBe(true);
        expect(tf.memory().numTensors).toBe(n0);
      }
      ctx.optimizer.dispose();
      m.dispose();
    }
  });

  it('optimizer state round-trips through save/load: the next step is identical', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tropt-'));
    const a = model(), b = model();
    const optA = makeOptimizer({ optimizer: 'sgd', lr: 0.05, momentum: 0.9 });
    trainStep(ctxOf(a, 'orig', { optimizer: optA }), batch, 0);
    await saveOptimizerState(optA, dir);
    // b gets a's weights and the saved optimizer state, then both take the same step
    b.variables.forEach((v, i) => v.assign(a.variables[i]));
    const optB = makeOptimizer({ optimizer: 'sgd', lr: 0.05, momentum: 0.9 });
    expect(await loadOptimizerState(optB, dir)).toBe(true);
    trainStep(ctxOf(a, 'orig', { optimizer: optA }), batch, 1);
    trainStep(ctxOf(b, 'orig', { optimizer: optB }), batch, 1);
    const wa = weights(a), wb = weights(b);
    wa.forEach((w, i) => expect(Array.from(wb[i])).toEqual(Array.from(w)));
    optA.dispose(); optB.dispose(); a.dispose(); b.dispose();
  });
});
