import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../trainer/backend.ts';
import { PyTorchRMSprop } from '../trainer/optimizers.ts';
import { loadOptimizerState, makeOptimizer, saveOptimizerState, setLearningRate } from '../trainer/optimizer-state.ts';

/** torch.optim.RMSprop's update in float64, written from its documentation: the reference the tests hold us to. */
function torchRmsprop(p0: number[], grads: number[][], lr: number[], momentum: number, alpha = 0.99, eps = 1e-8): number[] {
  const p = [...p0], v = p0.map(() => 0), buf = p0.map(() => 0);
  grads.forEach((g, t) => {
    for (let i = 0; i < p.length; i++) {
      v[i] = alpha * v[i] + (1 - alpha) * g[i] * g[i];
      const avg = Math.sqrt(v[i]) + eps;
      if (momentum > 0) { buf[i] = momentum * buf[i] + g[i] / avg; p[i] -= lr[t] * buf[i]; } else p[i] -= (lr[t] * g[i]) / avg;
    }
  });
  return p;
}

let n = 0;
/** one optimizer step per gradient row on a fresh variable, with the lr of that step */
function run(opt: tf.Optimizer, p0: number[], grads: number[][], lr: number[]): number[] {
  const v = tf.variable(tf.tensor1d(p0), true, `rms-test-${n++}`);
  grads.forEach((g, t) => {
    setLearningRate(opt, lr[t]);
    tf.tidy(() => opt.applyGradients({ [v.name]: tf.tensor1d(g) }));
  });
  const out = Array.from(v.dataSync());
  v.dispose();
  return out;
}

beforeAll(async () => { await initBackend({ backend: 'cpu', log: () => undefined }); });

describe("PyTorch's RMSprop (CCT preset)", () => {
  it('takes the hand-computed first steps', () => {
    // g = 0.5, lr 0.01, momentum 0.9: v = 0.0025, avg = 0.05 + 1e-8, buf = 10, p = 1 − 0.1 = 0.9
    const opt = new PyTorchRMSprop(0.01, 0.9);
    expect(run(opt, [1], [[0.5]], [0.01])[0]).toBeCloseTo(0.9, 6);
    // second step: v = 0.004975, buf = 9 + 0.5/√0.004975 = 16.08881, p = 0.9 − 0.1608881
    expect(run(new PyTorchRMSprop(0.01, 0.9), [1], [[0.5], [0.5]], [0.01, 0.01])[0]).toBeCloseTo(0.9 - 0.01 * (9 + 0.5 / Math.sqrt(0.004975)), 6);
    opt.dispose();
  });

  it('matches torch.optim.RMSprop over several steps, with and without momentum, across an lr drop', () => {
    const p0 = [0.3, -1.2, 2, 0.01];
    const grads = [[0.5, -0.2, 1e-6, 3], [0.4, 0.1, -1e-6, -2], [-0.3, 0.2, 0, 1], [0.1, -0.5, 2e-6, 0.5]];
    const lr = [0.003, 0.003, 0.0003, 0.0003];
    for (const momentum of [0, 0.9]) {
      const ours = run(makeOptimizer({ optimizer: 'rmsprop', lr: 0.003, momentum }), p0, grads, lr);
      const ref = torchRmsprop(p0, grads, lr, momentum);
      ours.forEach((v, i) => expect(v).toBeCloseTo(ref[i], 5));
    }
  });

  it("differs from tfjs's rmsprop where the recipe would notice (ε inside the root, lr folded into momentum)", () => {
    // a tiny gradient: PyTorch divides by √v + 1e-8 ≈ 1.1e-7, tfjs by √(v + 1e-8) ≈ 1e-4
    const grads = [[1e-6]];
    const ref = torchRmsprop([0], grads, [0.003], 0.9)[0];
    const tfjs = run(tf.train.rmsprop(0.003, 0.99, 0.9, 1e-8), [0], grads, [0.003])[0];
    const ours = run(makeOptimizer({ optimizer: 'rmsprop', lr: 0.003, momentum: 0.9 }), [0], grads, [0.003])[0];
    expect(ours).toBeCloseTo(ref, 6);
    expect(Math.abs(tfjs - ref)).toBeGreaterThan(0.02);
  });

  it('makeOptimizer gives it for rmsprop', () => {
    expect(makeOptimizer({ optimizer: 'rmsprop', lr: 0.003, momentum: 0.9 })).toBeInstanceOf(PyTorchRMSprop);
  });

  it('resumes exactly: state saved after two steps, loaded into a fresh one, takes the same third step', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rms-'));
    const grads = [[0.5, -0.25], [0.1, 0.3], [-0.4, 0.2]];
    const a = makeOptimizer({ optimizer: 'rmsprop', lr: 0.01, momentum: 0.9 });
    const va = tf.variable(tf.tensor1d([1, 2]), true, 'rms-resume-a');
    for (const g of grads.slice(0, 2)) tf.tidy(() => a.applyGradients({ [va.name]: tf.tensor1d(g) }));
    await saveOptimizerState(a, dir);
    const b = makeOptimizer({ optimizer: 'rmsprop', lr: 0.01, momentum: 0.9 });
    expect(await loadOptimizerState(b, dir)).toBe(true);
    // b's slots are keyed by variable name: continue with a's variable under b, a on a copy
    const snapshot = Array.from(va.dataSync());
    tf.tidy(() => b.applyGradients({ [va.name]: tf.tensor1d(grads[2]) }));
    const fromB = Array.from(va.dataSync());
    va.assign(tf.tensor1d(snapshot));
    tf.tidy(() => a.applyGradients({ [va.name]: tf.tensor1d(grads[2]) }));
    expect(fromB).toEqual(Array.from(va.dataSync()));
    const ref = torchRmsprop([1, 2], grads, [0.01, 0.01, 0.01], 0.9);
    fromB.forEach((v, i) => expect(v).toBeCloseTo(ref[i], 5));
    const before = tf.memory().numTensors;
    a.dispose(); b.dispose(); va.dispose();
    expect(tf.memory().numTensors).toBeLessThan(before);
  });
});
