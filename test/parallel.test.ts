import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../manifests/rng.ts';
import { initBackend } from '../trainer/backend.ts';
import { ROLE, type TrainBatch } from '../trainer/data.ts';
import { parseMethod, type MethodSpec } from '../trainer/method.ts';
import { createModel, presetConfig, type Model } from '../trainer/model.ts';
import { paramLayout, shardBatch, shardGradient, startParallelStep, type ParallelStep } from '../trainer/parallel.ts';
import { makeOptimizer } from '../trainer/optimizer-state.ts';
import { trainStep, type StepContext } from '../trainer/step.ts';

const S = 16, K = 3;
const CFG = presetConfig('tiny', K);

/**
 * A batch in the trainer's layout with uneven groups: original i has a CF image when i % 3 ≠ 1 and an F image when
 * i % 2 = 0, so shards of equal original counts hold different image counts (a plain mean of shard means would be
 * wrong). Original 3's mask is unusable (no background), so Sal and FGSM leave it out.
 */
function makeBatch(nOrig: number, seed = 0): TrainBatch {
  const rng = rngFor('parallel-test', seed);
  const groups: { g: number; role: number; term: number }[] = [];
  for (let i = 0; i < nOrig; i++) if (i % 3 !== 1) groups.push({ g: i, role: ROLE.cf, term: 0 });
  for (let i = 0; i < nOrig; i++) if (i % 2 === 0) groups.push({ g: i, role: ROLE.f, term: 1 });
  const n = nOrig + groups.length, px = S * S * 3;
  const b: TrainBatch = {
    size: S, nOrig, n, x: new Float32Array(n * px), labels: new Int32Array(n), role: new Uint8Array(n), parent: new Int32Array(n),
    term: new Int16Array(n).fill(-1), ids: [], objMask: new Float32Array(nOrig * S * S), maskUsable: new Uint8Array(nOrig),
  };
  for (let i = 0; i < b.x.length; i++) b.x[i] = 2 * rng.next() - 1;
  for (let i = 0; i < nOrig; i++) {
    b.labels[i] = rng.int(K); b.role[i] = ROLE.orig; b.parent[i] = i; b.ids.push(`o${i}`);
    const x0 = rng.int(8), y0 = rng.int(8), side = i === 3 ? S : 6;
    for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) b.objMask![i * S * S + ((y0 + y) % S) * S + ((x0 + x) % S)] = 1;
    b.maskUsable[i] = i === 3 ? 0 : 1;
  }
  groups.forEach((e, j) => {
    const i = nOrig + j;
    b.labels[i] = b.labels[e.g]; b.role[i] = e.role; b.parent[i] = e.g; b.term[i] = e.term; b.ids.push(`o${e.g}/${e.role}`);
  });
  return b;
}

function copyBatch(b: TrainBatch): TrainBatch {
  return { ...b, x: b.x.slice(), labels: b.labels.slice(), role: b.role.slice(), parent: b.parent.slice(), term: b.term.slice(), ids: [...b.ids], objMask: b.objMask?.slice() ?? null, maskUsable: b.maskUsable.slice() };
}

function weightsOf(m: Model): Float32Array[] {
  return m.variables.map((v) => v.dataSync().slice() as Float32Array);
}

function setWeights(m: Model, w: Float32Array[]): void {
  m.variables.forEach((v, i) => v.assign(tf.tensor(w[i], v.shape)));
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  a.forEach((x, v) => { for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - b[v][i])); });
  return d;
}

function maxAbs(a: Float32Array[]): number {
  return Math.max(...a.map((x) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
}

/** Single-process reference: trainStep with plain SGD at lr 1 and no clipping, read back as w_before − w_after. */
function referenceGradient(m: Model, method: MethodSpec, batch: TrainBatch, seed: number): { grads: Float32Array[]; total: number; terms: Record<string, number>; counts: Record<string, number>; nImages: number } {
  const before = weightsOf(m);
  const optimizer = tf.train.sgd(1);
  const st = trainStep({ model: m, optimizer, method, cfLoss: 'logp', numClasses: K, clipNorm: 1e9, weightDecay: 0 }, batch, seed);
  optimizer.dispose();
  const after = weightsOf(m);
  setWeights(m, before);
  return { grads: before.map((w, v) => w.map((x, i) => x - after[v][i])), total: st.total, terms: st.terms, counts: st.counts, nImages: st.nImages };
}

function ctxOf(m: Model, method: MethodSpec, over: Partial<StepContext> = {}): StepContext {
  return { model: m, optimizer: makeOptimizer({ optimizer: 'sgd', lr: 0, momentum: 0 }), method, cfLoss: 'logp', numClasses: K, clipNorm: 1e9, weightDecay: 0, ...over };
}

/** FGSM with ε = 0 leaves the images unchanged, so its composition (CE of the masked originals again) is deterministic. */
const FGSM_ZERO: MethodSpec = { ...parseMethod('f-fgsm'), fgsm: { epsilon: 0 } };

describe('shardBatch', () => {
  it('splits whole originals with their own generated images, every image exactly once, balanced by image count', () => {
    const b = makeBatch(7);
    for (const parts of [2, 3, 7, 9]) {
      const shards = shardBatch(b, parts);
      expect(shards.length).toBe(Math.min(parts, 7));
      const seen: string[] = [];
      let origBase = 0;
      for (const sh of shards) {
        expect(sh.nOrig).toBeGreaterThan(0);
        for (let i = 0; i < sh.n; i++) {
          seen.push(sh.ids[i]);
          const global = b.ids.indexOf(sh.ids[i]);
          expect(sh.role[i]).toBe(b.role[global]);
          expect(sh.labels[i]).toBe(b.labels[global]);
          expect(sh.parent[i] + origBase).toBe(b.parent[global]);
          expect(sh.ids[sh.parent[i]]).toBe(`o${b.parent[global]}`);
          expect(Array.from(sh.x.subarray(i * S * S * 3, (i + 1) * S * S * 3))).toEqual(Array.from(b.x.subarray(global * S * S * 3, (global + 1) * S * S * 3)));
        }
        for (let i = 0; i < sh.nOrig; i++) {
          expect(sh.role[i]).toBe(ROLE.orig);
          expect(sh.maskUsable[i]).toBe(b.maskUsable[origBase + i]);
          expect(Array.from(sh.objMask!.subarray(i * S * S, (i + 1) * S * S))).toEqual(Array.from(b.objMask!.subarray((origBase + i) * S * S, (origBase + i + 1) * S * S)));
        }
        origBase += sh.nOrig;
      }
      expect(seen.sort()).toEqual([...b.ids].sort());
      // balanced: every shard within one original's images (at most 3) of an equal share
      for (const sh of shards) expect(Math.abs(sh.n - b.n / shards.length)).toBeLessThanOrEqual(3);
    }
    // the 7 originals bring 3,1,3,2,2,2,3 images (16): originals 0-3 (9 images) and 4-6 (7)
    expect(shardBatch(b, 2).map((s) => [s.nOrig, s.n])).toEqual([[4, 9], [3, 7]]);
  });
});

describe('data-parallel step (wasm, tiny model, 16 px)', () => {
  let twoWorkers: ParallelStep;
  let mainPlusOne: ParallelStep;

  beforeAll(async () => {
    await initBackend({ backend: 'wasm', log: () => undefined });
    [twoWorkers, mainPlusOne] = await Promise.all([
      startParallelStep({ threads: 2, model: CFG, backend: 'wasm', computeOnMain: false, log: () => undefined }),
      startParallelStep({ threads: 2, model: CFG, backend: 'wasm', log: () => undefined }),
    ]);
  });
  afterAll(async () => {
    await twoWorkers?.close();
    await mainPlusOne?.close();
  });

  it('the gradient averaged over 2 workers equals the single-process gradient of the batch (CE, CF+F, Sal, FGSM)', async () => {
    const m = createModel(CFG, 1, { zeroHead: false });
    const layout = paramLayout(CFG);
    for (const [name, method] of [
      ['orig', parseMethod('orig')], ['cf+f', parseMethod('cf-tile+f-random')], ['cf+f+sal', parseMethod('cf-tile+f-random+sal@3')], ['fgsm+sal', { ...FGSM_ZERO, sal: { lambda: 2 } }],
    ] as [string, MethodSpec][]) {
      const batch = makeBatch(7);
      const ref = referenceGradient(m, method, copyBatch(batch), 5);
      const par = await twoWorkers.gradients(ctxOf(m, method), copyBatch(batch), 5);
      expect(maxAbs(ref.grads), name).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(par.grads, ref.grads), name).toBeLessThan(1e-5);
      expect(par.stats.nImages, name).toBe(ref.nImages);
      expect(par.stats.counts, name).toEqual(ref.counts);
      expect(par.stats.total, name).toBeCloseTo(ref.total, 5);
      for (const t of Object.keys(ref.terms)) expect(par.stats.terms[t as keyof typeof par.stats.terms], `${name} ${t}`).toBeCloseTo(ref.terms[t], 4);
      if (name === 'cf+f+sal') {
        // the test can tell: the unweighted mean of the two shard gradients is not the batch gradient
        const shards = shardBatch(batch, 2);
        const g = shards.map((sh) => { const out = new Float32Array(layout.total); shardGradient(m, { method, cfLoss: 'logp', numClasses: K }, sh, 5, layout, out); return out; });
        const naive = layout.offsets.map((o, v) => g[0].subarray(o, o + par.grads[v].length).map((x, i) => (x + g[1][o + i]) / 2));
        expect(maxAbsDiff(naive, ref.grads)).toBeGreaterThan(1e-4);
      }
    }
    // fewer originals than threads: one shard, on a worker
    const one = makeBatch(1, 3);
    const ref1 = referenceGradient(m, parseMethod('cf-tile+f-random'), copyBatch(one), 1);
    const par1 = await twoWorkers.gradients(ctxOf(m, parseMethod('cf-tile+f-random')), copyBatch(one), 1);
    expect(maxAbsDiff(par1.grads, ref1.grads)).toBeLessThan(1e-5);
    m.dispose();
  });

  it('steps of momentum SGD with clipping and weight decay give the weights of trainStep (main thread + 1 worker)', async () => {
    const a = createModel(CFG, 2, { zeroHead: false });
    const b = createModel(CFG, 2, { zeroHead: false });
    const method = parseMethod('cf-tile+f-random+sal');
    const hyper = { optimizer: 'sgd' as const, lr: 0.05, momentum: 0.9 };
    const over = { clipNorm: 0.5, weightDecay: 1e-3 };
    const ctxA = ctxOf(a, method, { ...over, optimizer: makeOptimizer(hyper) });
    const ctxB = ctxOf(b, method, { ...over, optimizer: makeOptimizer(hyper) });
    const start = weightsOf(a);
    let clipped = 0;
    // warm-up step creates the optimizer's state; afterwards a step must not leave tensors behind
    for (let s = 0; s < 4; s++) {
      const tensorsBefore = tf.memory().numTensors;
      const batch = makeBatch(6, 10 + s);
      const pa = await mainPlusOne.step(ctxA, copyBatch(batch), 100 + s);
      if (s > 0) expect(tf.memory().numTensors).toBe(tensorsBefore);
      const pb = trainStep(ctxB, copyBatch(batch), 100 + s);
      expect(pa.clipped).toBe(pb.clipped);
      expect(pa.skipped).toBe(false);
      expect(pa.gradNorm).toBeCloseTo(pb.gradNorm, 4);
      expect(pa.total).toBeCloseTo(pb.total, 5);
      if (pa.clipped) clipped++;
      expect(maxAbsDiff(weightsOf(a), weightsOf(b))).toBeLessThan(1e-5);
    }
    expect(clipped).toBeGreaterThan(0);
    expect(maxAbsDiff(weightsOf(a), start)).toBeGreaterThan(1e-3);
    a.dispose(); b.dispose();
    ctxA.optimizer.dispose(); ctxB.optimizer.dispose();
  });

  it('a non-finite loss on one shard skips the whole step and leaves the weights alone', async () => {
    const m = createModel(CFG, 3, { zeroHead: false });
    const ctx = ctxOf(m, parseMethod('orig'), { optimizer: tf.train.sgd(0.1) });
    const batch = makeBatch(6);
    batch.x[batch.x.length - 1] = NaN; // last image: second shard, computed on the worker
    const before = weightsOf(m);
    const st = await mainPlusOne.step(ctx, batch, 0);
    expect(st.skipped).toBe(true);
    expect(maxAbsDiff(weightsOf(m), before)).toBe(0);
    m.dispose();
  });

  it('refuses a model that is not the one the workers mirror', async () => {
    const other = createModel(presetConfig('tiny', 2), 0);
    await expect(mainPlusOne.gradients(ctxOf(other, parseMethod('orig')), makeBatch(4), 0)).rejects.toThrow(/does not match the workers' model.*head/);
    other.dispose();
  });
});
