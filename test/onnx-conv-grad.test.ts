import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { rngFor } from '../manifests/rng.ts';
import { samePads } from '../trainer/onnx/graph.ts';
import { conv2d, type ConvAttrs } from '../trainer/onnx/tf-conv.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

/**
 * L(x, w) = Σ conv(x, w) ⊙ R is bilinear, so central differences are exact up to float32 rounding: the custom
 * gradient must match them for the input and the filter, for strides, dilations and uneven pads.
 */
describe('conv2d custom gradient equals finite differences', () => {
  const cases: [string, number, number, number, number, ConvAttrs][] = [
    // name, H, W, k, Ci→Co(=2), attrs
    ['3×3 stride 1', 6, 5, 3, 2, { strides: [1, 1], dilations: [1, 1], pads: samePads(3) }],
    ['3×3 dilation 2', 8, 8, 3, 2, { strides: [1, 1], dilations: [2, 2], pads: samePads(3, 2) }],
    ['3×3 dilation 4', 9, 10, 3, 2, { strides: [1, 1], dilations: [4, 4], pads: samePads(3, 4) }],
    ['3×3 dilation (2, 3), uneven pads', 7, 9, 3, 2, { strides: [1, 1], dilations: [2, 3], pads: [1, 3, 2, 0] }],
    ['5×5 stride 1, valid', 8, 7, 5, 3, { strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0] }],
    ['3×3 stride 2', 8, 8, 3, 2, { strides: [2, 2], dilations: [1, 1], pads: samePads(3, 1, 2) }],
    ['4×4 stride 2', 8, 6, 4, 2, { strides: [2, 2], dilations: [1, 1], pads: samePads(4, 1, 2) }],
    ['3×3 stride 2, odd size', 7, 9, 3, 2, { strides: [2, 2], dilations: [1, 1], pads: [1, 1, 1, 1] }],
  ];
  for (const [name, H, W, k, Ci, a] of cases) {
    it(name, () => {
      const rng = rngFor('conv-grad', name);
      const B = 2, Co = 3;
      const xv = Float32Array.from({ length: B * H * W * Ci }, () => rng.normal());
      const wv = Float32Array.from({ length: k * k * Ci * Co }, () => rng.normal());
      const x = tf.tensor4d(xv, [B, H, W, Ci]);
      const w = tf.tensor4d(wv, [k, k, Ci, Co]);
      const y = conv2d(x, w, a);
      const R = tf.tensor(Float32Array.from({ length: y.size }, () => rng.normal()), y.shape);
      const loss = (xa: Float32Array, wa: Float32Array) => tf.tidy(() =>
        tf.sum(tf.mul(conv2d(tf.tensor4d(xa, [B, H, W, Ci]), tf.tensor4d(wa, [k, k, Ci, Co]), a), R)).dataSync()[0]);
      // dy = R: the custom gradient is the only one on the tape.
      const [gx, gw] = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, a))([x, w], R);
      expect(gx.shape).toEqual(x.shape);
      expect(gw.shape).toEqual(w.shape);
      const gxa = gx.dataSync(), gwa = gw.dataSync();
      const eps = 0.5;
      const check = (arr: Float32Array, other: Float32Array, isX: boolean, grad: Float32Array | Int32Array | Uint8Array) => {
        for (let t = 0; t < 12; t++) {
          const i = rng.int(arr.length);
          const plus = arr.slice(); plus[i] += eps;
          const minus = arr.slice(); minus[i] -= eps;
          const fd = isX ? (loss(plus, other) - loss(minus, other)) / (2 * eps) : (loss(other, plus) - loss(other, minus)) / (2 * eps);
          expect(Math.abs(fd - grad[i])).toBeLessThan(1e-3 * Math.max(1, Math.abs(fd)));
        }
      };
      check(xv, wv, true, gxa);
      check(wv, xv, false, gwa);
      tf.dispose([x, w, y, R, gx, gw]);
    });
  }
});
