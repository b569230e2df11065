/**
 * Our wasm kernels against the cpu backend, our gradients against finite differences and hand-derived values,
 * and the ResNetV2 op patterns forward / backward / doubly backward on wasm against cpu (trainer/kernels/probe.ts, also run by bench/kernels-probe.ts).
 */
import { beforeAll, describe, expect, test } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../trainer/backend.ts';
import { WASM_KERNELS, registerWasmKernels } from '../trainer/kernels/index.ts';
import { setFilterGradStrategy, type FilterGradStrategy } from '../trainer/kernels/conv2d_backprop_filter.ts';
import { setMatMulRouting, type MatMulRouting } from '../trainer/kernels/batch_mat_mul.ts';
import { gradientsOrZeros, missingPieces, probe, relativeError } from '../trainer/kernels/probe.ts';
import { groupNorm, normalInput, standardiseWeights } from '../trainer/kernels/probe_cases.ts';
import { logSoftmax } from '../trainer/kernels/safe_ops.ts';
import { rngFor } from '../manifests/rng.ts';

const TOL = 1e-4;
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
type Attrs = Record<string, unknown>;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
});

function normal(key: string, shape: number[], scale = 1, shift = 0): tf.Tensor {
  const v = normalInput(key, shape, scale, shift);
  return tf.tensor(v.values, shape);
}

/** Runs `f` on cpu then on wasm (fresh tensors each time) and returns the flattened outputs of both. */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: Float32Array[]; wasm: Float32Array[] }> {
  const run = async (backend: string): Promise<Float32Array[]> => {
    await tf.setBackend(backend);
    return tf.tidy(() => {
      const out = f();
      return (Array.isArray(out) ? out : [out]).map((t) => Float32Array.from(t.dataSync()));
    });
  };
  const cpu = await run('cpu');
  const wasm = await run('wasm');
  return { cpu, wasm };
}

function expectClose(got: Float32Array, want: Float32Array, tol = TOL, what = ''): void {
  expect(got.length, what).toBe(want.length);
  expect(relativeError(got, want), what).toBeLessThanOrEqual(tol);
}

async function expectWasmMatchesCpu(f: () => tf.Tensor | tf.Tensor[], what: string): Promise<void> {
  const { cpu, wasm } = await onBoth(f);
  cpu.forEach((c, i) => expectClose(wasm[i], c, TOL, `${what} output ${i}`));
}

const kernel = (name: string, inputs: Record<string, tf.Tensor>, attrs: Attrs): tf.Tensor | tf.Tensor[] =>
  tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];

/** central difference of a scalar function along direction v, against <grad, v> */
function directionalCheck(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, key: string, eps = 1e-2): { fd: number; ad: number } {
  return tf.tidy(() => {
    const v = normal(`dir-${key}`, x.shape);
    const grad = gradientsOrZeros((t) => f(t), [x])[0];
    const ad = tf.sum(tf.mul(grad, v)).dataSync()[0];
    const plus = f(tf.add(x, tf.mul(v, eps))).dataSync()[0];
    const minus = f(tf.sub(x, tf.mul(v, eps))).dataSync()[0];
    return { fd: (plus - minus) / (2 * eps), ad };
  });
}

const CONV_CASES: Array<{ x: number[]; f: number[]; s: number | [number, number]; pad: Pad }> = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 1, pad: 'same' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], s: 2, pad: 'same' },
  { x: [1, 9, 7, 2], f: [3, 3, 2, 5], s: 2, pad: 'same' },
  { x: [3, 8, 9, 2], f: [3, 3, 2, 3], s: 2, pad: 'valid' },
  { x: [1, 11, 10, 2], f: [3, 3, 2, 2], s: 3, pad: 'same' },
  { x: [2, 6, 6, 4], f: [1, 1, 4, 6], s: 1, pad: 'valid' },
  { x: [2, 7, 6, 4], f: [1, 1, 4, 5], s: 2, pad: 'valid' },
  { x: [1, 12, 12, 3], f: [7, 7, 3, 4], s: 2, pad: 3 },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], s: 2, pad: 1 },
  { x: [1, 8, 7, 2], f: [3, 3, 2, 3], s: [2, 1], pad: [[0, 0], [1, 0], [0, 2], [0, 0]] },
  { x: [1, 5, 5, 2], f: [1, 1, 2, 3], s: 1, pad: [[0, 0], [1, 2], [2, 1], [0, 0]] },
  { x: [1, 6, 7, 2], f: [2, 4, 2, 3], s: 1, pad: 'same' },
];

function dyShapeFor(c: (typeof CONV_CASES)[number]): number[] {
  const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number],
    c.f as [number, number, number, number], c.s, 1, c.pad);
  return info.outShape;
}

describe('wasm kernels vs cpu', () => {
  test('the registration list and the kernels actually registered agree', () => {
    const registered = registerWasmKernels();
    expect([...registered].sort()).toEqual(WASM_KERNELS.map((k) => k.name).sort());
    for (const name of registered) expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
  });

  for (const strategy of ['conv', 'taps'] as FilterGradStrategy[]) {
    test(`Conv2DBackpropFilter (${strategy}) over strides, paddings and filter sizes`, async () => {
      setFilterGradStrategy(strategy);
      try {
        for (const [i, c] of CONV_CASES.entries()) {
          await expectWasmMatchesCpu(() => kernel('Conv2DBackpropFilter',
            { x: normal(`bf-x${i}`, c.x), dy: normal(`bf-dy${i}`, dyShapeFor(c)) },
            { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f }), `filter grad case ${i} ${JSON.stringify(c)}`);
        }
      } finally {
        setFilterGradStrategy('conv');
      }
    });
  }

  test('Conv2DBackpropInput over strides, paddings and filter sizes', async () => {
    for (const [i, c] of CONV_CASES.entries()) {
      await expectWasmMatchesCpu(() => kernel('Conv2DBackpropInput',
        { dy: normal(`bi-dy${i}`, dyShapeFor(c)), filter: normal(`bi-f${i}`, c.f) },
        { strides: c.s, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x }), `input grad case ${i} ${JSON.stringify(c)}`);
    }
  });

  test('Conv2DBackpropFilter equals a hand-computed 1-channel example', async () => {
    // x = 1..9 on a 3x3 grid, dy = ones(2x2), 2x2 filter, valid: dW[i,j] = sum of the 2x2 block at (i,j)
    await tf.setBackend('wasm');
    const dw = tf.tidy(() => Array.from((kernel('Conv2DBackpropFilter',
      { x: tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]), dy: tf.ones([1, 2, 2, 1]) },
      { strides: 1, pad: 'valid', dataFormat: 'NHWC', filterShape: [2, 2, 1, 1] }) as tf.Tensor).dataSync()));
    expect(dw).toEqual([1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9]);
  });

  const POOLS: Array<{ x: number[]; k: number; s: number; pad: 'same' | 'valid' | number }> = [
    { x: [2, 7, 7, 3], k: 3, s: 2, pad: 'same' },
    { x: [2, 8, 8, 2], k: 3, s: 2, pad: 'valid' },
    { x: [1, 6, 6, 2], k: 2, s: 2, pad: 'valid' },
    { x: [1, 5, 6, 2], k: 3, s: 1, pad: 'same' },
    { x: [2, 9, 9, 2], k: 3, s: 3, pad: 1 },
  ];
  const FILLS: Array<[string, (key: string, shape: number[]) => tf.Tensor]> = [
    ['normal', (key, shape) => normal(key, shape)],
    ['all negative', (key, shape) => normal(key, shape, 1, -6)],
    ['ties', (key, shape) => {
      const rng = rngFor('ties', key);
      return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.int(3) - 2), shape);
    }],
  ];

  test('MaxPoolGrad over pool configs, for normal, all-negative and tied inputs', async () => {
    for (const [i, p] of POOLS.entries()) {
      for (const [fill, make] of FILLS) {
        await expectWasmMatchesCpu(() => {
          const x = make(`mp${i}`, p.x) as tf.Tensor4D;
          const y = tf.maxPool(x, p.k, p.s, p.pad);
          return kernel('MaxPoolGrad', { dy: normal(`mpdy${i}`, y.shape), input: x, output: y },
            { filterSize: p.k, strides: p.s, pad: p.pad });
        }, `max pool grad ${fill} ${JSON.stringify(p)}`);
      }
    }
  });

  test('MaxPoolGrad routes to the first maximum, also when every value is negative', async () => {
    await tf.setBackend('wasm');
    const grad = (v: number[]): number[] => tf.tidy(() => Array.from(tf.grad((x: tf.Tensor) =>
      tf.sum(tf.mul(tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'), 3)))(tf.tensor4d(v, [1, 2, 2, 1])).dataSync()));
    expect(grad([-2, -1, -1, -3])).toEqual([0, 3, 0, 0]);
    expect(grad([5, 5, 1, 1])).toEqual([3, 0, 0, 0]);
    expect(grad([0, 0, 0, 0])).toEqual([3, 0, 0, 0]);
  });

  test('MaxPoolWithArgmax (both outputs, with and without the batch in the index)', async () => {
    for (const [i, p] of POOLS.entries()) {
      for (const [fill, make] of FILLS) {
        for (const includeBatchInIndex of [true, false]) {
          await expectWasmMatchesCpu(() => kernel('MaxPoolWithArgmax', { x: make(`mpa${i}`, p.x) },
            { filterSize: p.k, strides: p.s, pad: p.pad, includeBatchInIndex }) as tf.Tensor[],
          `argmax ${fill} ${includeBatchInIndex} ${JSON.stringify(p)}`);
        }
      }
    }
  });

  test('UnsortedSegmentSum: hand-computed example and random shapes', async () => {
    await tf.setBackend('wasm');
    const hand = tf.tidy(() => Array.from(tf.unsortedSegmentSum(tf.tensor2d([[1, 2], [3, 4], [5, 6]]),
      tf.tensor1d([1, 0, 1], 'int32'), 3).dataSync()));
    expect(hand).toEqual([3, 4, 6, 8, 0, 0]);
    for (const [i, shape] of [[7], [6, 3], [5, 2, 4]].entries()) {
      await expectWasmMatchesCpu(() => {
        const rng = rngFor('uss', i);
        const ids = tf.tensor1d(Array.from({ length: shape[0] }, () => rng.int(4)), 'int32');
        return tf.unsortedSegmentSum(normal(`uss${i}`, shape), ids, 4);
      }, `unsortedSegmentSum ${shape}`);
    }
  });

  test('GatherV2 with batchDims: hand-computed example and several layouts', async () => {
    await tf.setBackend('wasm');
    const picked = tf.tidy(() => Array.from(tf.gather(tf.tensor2d([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]),
      tf.tensor1d([2, 0, 1, 1], 'int32'), 1, 1).dataSync()));
    expect(picked).toEqual([3, 4, 8, 11]);
    const layouts: Array<{ x: number[]; idx: number[]; axis: number; batchDims: number }> = [
      { x: [4, 5], idx: [4, 3], axis: 1, batchDims: 1 },
      { x: [2, 3, 4, 2], idx: [2, 3], axis: 2, batchDims: 1 },
      { x: [2, 3, 5], idx: [2, 3, 2], axis: 2, batchDims: 2 },
      { x: [5, 3], idx: [6], axis: 0, batchDims: 0 },
    ];
    for (const [i, l] of layouts.entries()) {
      await expectWasmMatchesCpu(() => {
        const rng = rngFor('gather', i);
        const n = l.idx.reduce((a, b) => a * b, 1);
        const idx = tf.tensor(Int32Array.from({ length: n }, () => rng.int(l.x[l.axis])), l.idx, 'int32');
        return tf.gather(normal(`g${i}`, l.x), idx, l.axis, l.batchDims);
      }, `gather ${JSON.stringify(l)}`);
    }
  });

  test('BatchMatMul: transposes and batch broadcasting', async () => {
    const cases: Array<[number[], number[], boolean, boolean]> = [
      [[4, 5], [5, 3], false, false], [[5, 4], [5, 3], true, false], [[4, 5], [3, 5], false, true],
      [[5, 4], [3, 5], true, true], [[3, 4, 5], [5, 2], false, false], [[3, 4, 5], [1, 5, 2], false, false],
      [[3, 5, 4], [2, 5], true, true], [[1, 4, 5], [3, 5, 2], false, false], [[1, 1, 6], [3, 6, 4], false, false],
      [[6, 1], [3, 6, 4], true, false], [[1, 5, 4], [3, 2, 5], true, true], [[3, 4, 5], [3, 5, 2], false, false],
      [[2, 1, 3, 4], [1, 4, 5], false, false], [[1, 3, 4, 5], [2, 1, 5, 6], false, false],
    ];
    for (const routing of ['always', 'auto'] as MatMulRouting[]) {
      setMatMulRouting(routing);
      try {
        for (const [i, [sa, sb, ta, tb]] of cases.entries()) {
          await expectWasmMatchesCpu(() => tf.matMul(normal(`mma${i}`, sa), normal(`mmb${i}`, sb), ta, tb),
            `matMul ${sa} ${sb} ${ta} ${tb} routing ${routing}`);
        }
      } finally {
        setMatMulRouting('auto');
      }
    }
  });

  test('Identity shares the buffer and reference-counts it', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as BackendWasm;
    const before = backend.numDataIds();
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x);
    expect(backend.numDataIds()).toBe(before + 1);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
    expect(backend.numDataIds()).toBe(before);
  });

  test('a conv + max pool training step leaks no wasm memory', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend() as unknown as BackendWasm;
    const x = normal('leak-x', [2, 8, 8, 3]) as tf.Tensor4D;
    const w = normal('leak-w', [3, 3, 3, 4]) as tf.Tensor4D;
    const step = (): void => tf.tidy(() => {
      const f = (xx: tf.Tensor, ww: tf.Tensor): tf.Scalar =>
        tf.sum(tf.maxPool(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 2, 'same'), 3, 2, 'same'));
      const sal = (ww: tf.Tensor): tf.Scalar => tf.sum(tf.square(tf.grad((xx: tf.Tensor) => f(xx, ww))(x)));
      tf.grads((xx: tf.Tensor, ww: tf.Tensor) => f(xx, ww))([x, w]).forEach((g) => g.dataSync());
      tf.grad(sal)(w).dataSync();
    });
    step();
    const ids = backend.numDataIds(), tensors = tf.memory().numTensors;
    step();
    expect(backend.numDataIds()).toBe(ids);
    expect(tf.memory().numTensors).toBe(tensors);
  });
});

describe('gradients for double backprop (checked against finite differences / calculus)', () => {
  test('MaxPoolGrad, AvgPoolGrad and Conv2DBackpropFilter gradients are the adjoints (linear in dy)', async () => {
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const x = normal('adj-x', [2, 7, 7, 3], 1, -0.5) as tf.Tensor4D;
      const y = tf.maxPool(x, 3, 2, 'same');
      const ddx = normal('adj-ddx', x.shape);
      const mp = (dy: tf.Tensor): tf.Scalar => tf.sum(tf.mul(kernel('MaxPoolGrad', { dy, input: x, output: y },
        { filterSize: 3, strides: 2, pad: 'same' }) as tf.Tensor, ddx));
      const ap = (dy: tf.Tensor): tf.Scalar => tf.sum(tf.mul(kernel('AvgPoolGrad', { dy, input: x },
        { filterSize: 3, strides: 2, pad: 'same' }) as tf.Tensor, ddx));
      const dy0 = normal('adj-dy', y.shape);
      for (const [name, f] of [['MaxPoolGrad', mp], ['AvgPoolGrad', ap]] as const) {
        const { fd, ad } = directionalCheck(f, dy0, name);
        expect(Math.abs(fd - ad) / Math.abs(ad), `${name} on ${backend}`).toBeLessThan(1e-3);
      }
      const c = CONV_CASES[2];
      const cx = normal('adj-cx', c.x), cdy = normal('adj-cdy', dyShapeFor(c)), ddw = normal('adj-ddw', c.f);
      const bf = (xx: tf.Tensor, dd: tf.Tensor): tf.Scalar => tf.sum(tf.mul(kernel('Conv2DBackpropFilter',
        { x: xx, dy: dd }, { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f }) as tf.Tensor, ddw));
      for (const [which, res] of [['x', directionalCheck((t) => bf(t, cdy), cx, 'bfx')], ['dy', directionalCheck((t) => bf(cx, t), cdy, 'bfdy')]] as const) {
        expect(Math.abs(res.fd - res.ad) / Math.abs(res.ad), `Conv2DBackpropFilter wrt ${which} on ${backend}`).toBeLessThan(1e-3);
      }
    }
  });

  test('second derivatives of exp, sigmoid, tanh and pow equal the calculus', async () => {
    const xs = [-1.5, -0.3, 0.2, 1.1];
    const d2 = (f: (x: tf.Tensor) => tf.Tensor): number[] => tf.tidy(() => Array.from(
      tf.grad((x: tf.Tensor) => tf.sum(tf.grad((t: tf.Tensor) => tf.sum(f(t)))(x)))(tf.tensor1d(xs)).dataSync()));
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    const want: Array<[string, (x: tf.Tensor) => tf.Tensor, (v: number) => number]> = [
      ['exp', tf.exp, Math.exp],
      ['sigmoid', tf.sigmoid, (v) => sig(v) * (1 - sig(v)) * (1 - 2 * sig(v))],
      ['tanh', tf.tanh, (v) => -2 * Math.tanh(v) * (1 - Math.tanh(v) ** 2)],
      ['pow 3', (x) => tf.pow(x, 3), (v) => 6 * v],
    ];
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      for (const [name, f, g] of want) {
        const got = d2(f);
        got.forEach((v, i) => expect(v, `${name}''(${xs[i]}) on ${backend}`).toBeCloseTo(g(xs[i]), 4));
      }
    }
  });

  test('double backprop through max, maximum, clipByValue (piecewise linear) is zero, not an error', async () => {
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const x = normal('pl-x', [3, 5]);
      const r = normal('pl-r', [3, 5]);
      const sal = (f: (t: tf.Tensor) => tf.Tensor) => (v: tf.Tensor): tf.Scalar =>
        tf.sum(tf.square(tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), r)))(v)));
      const cases: Array<[string, (t: tf.Tensor) => tf.Tensor, boolean]> = [
        ['clipByValue', (t) => tf.clipByValue(t, -0.5, 0.5), true],
        ['maximum', (t) => tf.maximum(t, 0.1), true],
        // d/dx Σ (r·max + Σ_j r_j x_j at the argmax)² is not zero: compare with finite differences instead
        ['max reduction', (t) => tf.mul(tf.max(t, 1, true), t), false],
      ];
      for (const [name, f, zero] of cases) {
        const g = tf.tidy(() => Array.from(tf.grad(sal(f))(x).dataSync()));
        expect(g.every(Number.isFinite), name).toBe(true);
        if (zero) {
          expect(g.every((v) => v === 0), name).toBe(true);
        } else {
          const { fd, ad } = directionalCheck(sal(f), x, 'max-red', 1e-3);
          expect(Math.abs(fd - ad) / Math.abs(ad), name).toBeLessThan(1e-2);
        }
      }
    }
  });

  test('smooth ops: saliency-style double backprop matches finite differences', async () => {
    const cases: Array<[string, (x: tf.Tensor, w: tf.Tensor) => tf.Tensor, number[], number[]]> = [
      ['softmax', (x, w) => tf.softmax(tf.matMul(x, w)), [3, 4], [4, 5]],
      ['safe logSoftmax', (x, w) => logSoftmax(tf.matMul(x, w)), [3, 4], [4, 5]],
      ['logSumExp', (x, w) => tf.logSumExp(tf.matMul(x, w), 1), [3, 4], [4, 5]],
      ['StdConv + GroupNorm + tanh', (x, w) => tf.tanh(groupNorm(tf.conv2d(x as tf.Tensor4D,
        standardiseWeights(w as tf.Tensor4D), 2, 'same'), 2, tf.ones([4]), tf.zeros([4]))), [2, 6, 6, 3], [3, 3, 3, 4]],
      ['shared-operand matMul', (x, w) => tf.tanh(tf.matMul(w, x)), [3, 4, 5], [1, 2, 4]],
    ];
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      for (const [name, f, xs, ws] of cases) {
        const x = normal(`sm-x-${name}`, xs), w = normal(`sm-w-${name}`, ws, 0.5);
        const r = tf.tidy(() => normal(`sm-r-${name}`, f(x, w).shape));
        const sal = (ww: tf.Tensor): tf.Scalar =>
          tf.sum(tf.square(tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t, ww), r)))(x)));
        const { fd, ad } = directionalCheck(sal, w, `sm-${name}`, 1e-2);
        expect(Math.abs(fd - ad) / Math.max(Math.abs(ad), 1e-3), `${name} on ${backend}: fd ${fd} ad ${ad}`).toBeLessThan(1e-2);
      }
    }
  });

  test('safe logSoftmax equals tf.logSoftmax', async () => {
    await expectWasmMatchesCpu(() => logSoftmax(normal('ls', [4, 6], 3)), 'logSoftmax');
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const diff = tf.tidy(() => {
        const x = normal('ls2', [4, 6], 3);
        return tf.max(tf.abs(tf.sub(logSoftmax(x), tf.logSoftmax(x)))).dataSync()[0];
      });
      expect(diff, backend).toBeLessThan(1e-5);
    }
  });

  test('AvgPool gradient at padded borders divides by the in-bounds count (tfjs-core divides by the window)', async () => {
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const g = tf.tidy(() => Array.from(tf.grad((t: tf.Tensor) => tf.sum(tf.avgPool(t as tf.Tensor4D, 3, 2, 'same')))(
        tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1])).dataSync()));
      // each 2x2-in-bounds window averages 4 cells; corners sit in 1 window, edges in 2, the centre in 4
      expect(g, backend).toEqual([0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25]);
      const x = normal('ap-x', [2, 7, 6, 2]);
      const { fd, ad } = directionalCheck((t) => tf.sum(tf.mul(tf.avgPool(t as tf.Tensor4D, 3, 2, 1), 1.5)), x, 'ap');
      expect(Math.abs(fd - ad) / Math.abs(ad), backend).toBeLessThan(1e-3);
    }
  });
});

describe('tiny conv + GroupNorm + ReLU + dense net', () => {
  const params = (): Record<string, tf.Tensor> => ({
    w1: normal('net-w1', [3, 3, 3, 8], 0.4), g1: normal('net-g1', [8], 0.1, 1), b1: normal('net-b1', [8], 0.1),
    w2: normal('net-w2', [3, 3, 8, 8], 0.3), wd: normal('net-wd', [8, 4], 0.4), bd: normal('net-bd', [4], 0.1),
  });
  const net = (x: tf.Tensor4D, p: Record<string, tf.Tensor>, act: (t: tf.Tensor4D) => tf.Tensor4D): tf.Tensor2D => {
    let h = tf.conv2d(x, standardiseWeights(p.w1 as tf.Tensor4D), 1, 'same');
    h = act(groupNorm(h, 4, p.g1, p.b1));
    h = tf.maxPool(h, 3, 2, 'same');
    h = tf.conv2d(h, p.w2 as tf.Tensor4D, 2, 'same');
    return tf.add(tf.matMul(tf.mean(h, [1, 2]) as tf.Tensor2D, p.wd as tf.Tensor2D), p.bd) as tf.Tensor2D;
  };
  const labels = [0, 3, 1];
  /** CE + λ·mean over images of Σ(∂ logit_y / ∂x)² — the shape of the Sal objective */
  const objective = (p: Record<string, tf.Tensor>, x: tf.Tensor4D, act: (t: tf.Tensor4D) => tf.Tensor4D): tf.Scalar => {
    const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 4);
    const ce = tf.neg(tf.mean(tf.sum(tf.mul(y, logSoftmax(net(x, p, act))), 1)));
    const inputGrad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(net(t as tf.Tensor4D, p, act), y)))(x);
    return tf.add(ce, tf.mul(0.5, tf.mean(tf.sum(tf.square(inputGrad), [1, 2, 3])))) as tf.Scalar;
  };

  test('forward, backward and double backward on wasm equal cpu', async () => {
    const names = Object.keys(params());
    await expectWasmMatchesCpu(() => {
      const p = params();
      const x = normal('net-x', [3, 8, 8, 3]) as tf.Tensor4D;
      const logits = net(x, p, tf.relu);
      const grads = gradientsOrZeros((...v) => objective(Object.fromEntries(names.map((n, i) => [n, v[i]])), x, tf.relu),
        names.map((n) => p[n]));
      return [logits, objective(p, x, tf.relu), ...grads];
    }, 'tiny net');
  });

  test('its saliency gradient matches finite differences (tanh variant, so the objective is smooth)', async () => {
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      const p = params();
      const x = normal('net-x2', [3, 8, 8, 3]) as tf.Tensor4D;
      const act = (t: tf.Tensor4D): tf.Tensor4D => tf.tanh(t);
      // max pool is piecewise: keep the probe direction off w1 (which moves the pooled argmaxes); w2 is after it
      const { fd, ad } = directionalCheck((w2) => objective({ ...p, w2 }, x, act), p.w2, `net-${backend}`, 1e-2);
      expect(Math.abs(fd - ad) / Math.abs(ad), `${backend}: fd ${fd} ad ${ad}`).toBeLessThan(1e-2);
    }
  });
});

describe('probe of the ResNetV2 op patterns', () => {
  test('every case matches cpu forward, backward and doubly backward on wasm, with no missing kernels', async () => {
    // small shapes would otherwise all take the stock matmul; route them so our paths are exercised too
    setMatMulRouting('always');
    const results = await probe('wasm').finally(() => setMatMulRouting('auto'));
    expect(missingPieces(results)).toEqual([]);
    const bad = results.filter((r) => r.error !== undefined || (r.relErr ?? 0) > TOL);
    expect(bad).toEqual([]);
    expect(results.length).toBeGreaterThan(150);
  });
});
