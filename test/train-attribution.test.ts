import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../trainer/backend.ts';
import { inputGradient, expectedGradients } from '../trainer/attribution.ts';
import { createModel, presetConfig } from '../trainer/model.ts';

beforeAll(async () => { await initBackend({ backend: 'cpu', log: () => undefined }); });

// A linear "model" on 2×2×1 images with 2 classes: z_k = Σ_j W[j, k] x_j. Its input gradient is W[:, y].
const W = [[1, -2], [0.5, 3], [-1, 0], [2, 1]];
const linear = (x: tf.Tensor4D): tf.Tensor2D => tf.matMul(tf.reshape(x, [x.shape[0], 4]), tf.tensor2d(W)) as tf.Tensor2D;

describe('attribution', () => {
  it('input gradient is each image\'s own target-class gradient', () => {
    const x = tf.tensor4d([1, 2, 3, 4, -1, 0, 1, 0], [2, 2, 2, 1]);
    const g = inputGradient(linear, x, Int32Array.from([0, 1]), 2).arraySync() as number[][][][];
    expect(g[0].flat(2)).toEqual(W.map((r) => r[0]));
    expect(g[1].flat(2)).toEqual(W.map((r) => r[1]));
  });

  it('expected gradients of a linear model with one baseline is (x − b) ⊙ W_y, whatever α', () => {
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    const b = tf.tensor4d([0.5, 0.5, -1, 2], [1, 2, 2, 1]);
    const eg = expectedGradients(linear, x, Int32Array.from([1]), 2, b, { samples: 5, seed: 3 }).dataSync();
    const want = [1 - 0.5, 2 - 0.5, 3 + 1, 4 - 2].map((d, j) => d * W[j][1]);
    Array.from(eg).forEach((v, j) => expect(v).toBeCloseTo(want[j], 5));
  });

  it('batched input gradients of the real model equal the per-image ones (no cross-image terms)', () => {
    const m = createModel(presetConfig('tiny', 3), 4, { zeroHead: false });
    const data = Float32Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => Math.sin(i * 0.37));
    const x = tf.tensor4d(data, [2, 8, 8, 3]);
    const both = inputGradient((t) => m.apply(t), x, Int32Array.from([2, 0]), 3).dataSync();
    const one = inputGradient((t) => m.apply(t), tf.tensor4d(data.subarray(192), [1, 8, 8, 3]), Int32Array.from([0]), 3).dataSync();
    Array.from(one).forEach((v, j) => expect(both[192 + j]).toBeCloseTo(v, 5));
    expect(Math.max(...Array.from(one, Math.abs))).toBeGreaterThan(0);
    m.dispose();
  });
});
