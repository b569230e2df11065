/**
 * The op patterns a BiT-style ResNetV2 uses, as small probe cases. Each case is run forward, backward (w.r.t.
 * every float input) and doubly backward (the gradient, w.r.t. every float input, of the squared input-gradient:
 * the saliency loss of DESIGN §4), on the backend under test and on the cpu reference backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../../manifests/rng.ts';

export interface ProbeInput {
  shape: number[];
  values: Float32Array | Int32Array;
  dtype: 'float32' | 'int32' | 'bool';
  /** take gradients w.r.t. this input */
  differentiable: boolean;
}

export interface ProbeCase {
  name: string;
  inputs: Record<string, ProbeInput>;
  /** the input whose gradient is squared in the double-backprop stage; null: no double stage */
  saliencyInput: string | null;
  fn: (t: Record<string, tf.Tensor>) => tf.Tensor;
}

/** standard-normal float input; `shift` moves the mean (e.g. all-negative max-pool windows) */
export function normalInput(key: string, shape: number[], scale = 1, shift = 0): ProbeInput {
  const rng = rngFor('probe', key, shape.join('x'));
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = rng.normal() * scale + shift;
  return { shape, values, dtype: 'float32', differentiable: true };
}

function intInput(key: string, shape: number[], below: number): ProbeInput {
  const rng = rngFor('probe-int', key, shape.join('x'));
  const values = new Int32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = rng.int(below);
  return { shape, values, dtype: 'int32', differentiable: false };
}

function boolInput(key: string, shape: number[]): ProbeInput {
  const v = intInput(key, shape, 2);
  return { ...v, dtype: 'bool' };
}

/** values with many exact ties (integers in a small range), the hard case for max-pool routing */
function tiedInput(key: string, shape: number[]): ProbeInput {
  const v = intInput(key, shape, 3);
  return { shape, values: Float32Array.from(v.values, (x) => x - 1), dtype: 'float32', differentiable: true };
}

type T4 = tf.Tensor4D;
type PadSpec = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

function convCase(name: string, x: number[], w: number[], stride: number, pad: PadSpec): ProbeCase {
  return {
    name,
    inputs: { x: normalInput(name + 'x', x), w: normalInput(name + 'w', w, 0.3) },
    saliencyInput: 'x',
    fn: ({ x, w }) => tf.conv2d(x as T4, w as T4, stride, pad as 'same'),
  };
}

/** weight standardisation (BiT StdConv): zero mean, unit variance over each output filter's H, W, Cin */
export function standardiseWeights(w: tf.Tensor4D): tf.Tensor4D {
  const { mean, variance } = tf.moments(w, [0, 1, 2], true);
  return tf.div(tf.sub(w, mean), tf.sqrt(tf.add(variance, 1e-10))) as tf.Tensor4D;
}

/** GroupNorm from core ops, as the trainer builds it */
export function groupNorm(x: tf.Tensor4D, groups: number, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const g = tf.reshape(x, [b, h, w, groups, c / groups]);
  const mean = tf.mean(g, [1, 2, 4], true);
  const centred = tf.sub(g, mean);
  const variance = tf.mean(tf.square(centred), [1, 2, 4], true);
  const normed = tf.reshape(tf.mul(centred, tf.rsqrt(tf.add(variance, eps))), [b, h, w, c]);
  return tf.add(tf.mul(normed, gamma), beta) as tf.Tensor4D;
}

function unary(name: string, shape: number[], f: (x: tf.Tensor) => tf.Tensor, shift = 0): ProbeCase {
  return { name, inputs: { x: normalInput(name, shape, 1, shift) }, saliencyInput: 'x', fn: ({ x }) => f(x) };
}

/** A pre-activation bottleneck unit with a strided projection shortcut, GN and StdConv, then head + CE. */
function bitUnitCase(): ProbeCase {
  const inputs: Record<string, ProbeInput> = {
    x: normalInput('bit-x', [2, 10, 10, 3]),
    wRoot: normalInput('bit-wroot', [3, 3, 3, 8], 0.3),
    g0: normalInput('bit-g0', [8], 0.1, 1), b0: normalInput('bit-b0', [8], 0.1),
    wProj: normalInput('bit-wproj', [1, 1, 8, 16], 0.3),
    w1: normalInput('bit-w1', [1, 1, 8, 4], 0.3),
    g1: normalInput('bit-g1', [4], 0.1, 1), b1: normalInput('bit-b1', [4], 0.1),
    w2: normalInput('bit-w2', [3, 3, 4, 4], 0.3),
    g2: normalInput('bit-g2', [4], 0.1, 1), b2: normalInput('bit-b2', [4], 0.1),
    w3: normalInput('bit-w3', [1, 1, 4, 16], 0.3),
    gH: normalInput('bit-gh', [16], 0.1, 1), bH: normalInput('bit-bh', [16], 0.1),
    wD: normalInput('bit-wd', [16, 5], 0.3), bD: normalInput('bit-bd', [5], 0.1),
    y: intInput('bit-y', [2], 5),
  };
  return {
    name: 'bit-unit+ce',
    inputs,
    saliencyInput: 'x',
    fn: (t) => {
      const std = (k: string): T4 => standardiseWeights(t[k] as T4);
      // root: StdConv, explicit pad 1, max pool 3x3 stride 2 (no activation before the pool: negative windows)
      let h = tf.conv2d(t.x as T4, std('wRoot'), 1, 'same');
      h = tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid');
      const pre = tf.relu(groupNorm(h, 2, t.g0, t.b0));
      const shortcut = tf.conv2d(pre, std('wProj'), 2, 'valid');
      let r = tf.conv2d(pre, std('w1'), 1, 'valid');
      r = tf.relu(groupNorm(r, 2, t.g1, t.b1));
      r = tf.conv2d(r, std('w2'), 2, 'same');
      r = tf.relu(groupNorm(r, 2, t.g2, t.b2));
      r = tf.conv2d(r, std('w3'), 1, 'valid');
      const out = tf.relu(groupNorm(tf.add(r, shortcut) as T4, 4, t.gH, t.bH));
      const pooled = tf.mean(out, [1, 2]);
      const logits = tf.add(tf.matMul(pooled as tf.Tensor2D, t.wD as tf.Tensor2D), t.bD);
      const ce = tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(t.y, 5), tf.logSoftmax(logits)), 1)));
      // each image's own target logit (DESIGN §4), so the saliency stage differentiates the right quantity
      const target = tf.sum(tf.gather(logits, t.y, 1, 1));
      return tf.stack([ce, target]);
    },
  };
}

export function probeCases(): ProbeCase[] {
  const cases: ProbeCase[] = [
    convCase('conv3x3 s1 same', [2, 6, 6, 3], [3, 3, 3, 4], 1, 'same'),
    convCase('conv3x3 s2 same odd', [2, 7, 7, 3], [3, 3, 3, 4], 2, 'same'),
    convCase('conv3x3 s2 same even', [2, 8, 8, 3], [3, 3, 3, 4], 2, 'same'),
    convCase('conv3x3 s1 valid', [2, 6, 5, 3], [3, 3, 3, 4], 1, 'valid'),
    convCase('conv3x3 s2 valid', [1, 9, 8, 2], [3, 3, 2, 3], 2, 'valid'),
    convCase('conv1x1 s1', [2, 5, 5, 4], [1, 1, 4, 6], 1, 'valid'),
    convCase('conv1x1 s2 projection', [2, 6, 6, 4], [1, 1, 4, 5], 2, 'valid'),
    convCase('conv1x1 s2 odd', [2, 7, 7, 4], [1, 1, 4, 5], 2, 'valid'),
    convCase('conv7x7 s2 explicit pad 3', [1, 12, 12, 3], [7, 7, 3, 4], 2, [[0, 0], [3, 3], [3, 3], [0, 0]]),
    convCase('conv3x3 s2 asymmetric pad', [1, 8, 7, 2], [3, 3, 2, 3], 2, [[0, 0], [1, 0], [0, 1], [0, 0]]),
    convCase('conv2x4 s1 same', [1, 6, 7, 2], [2, 4, 2, 3], 1, 'same'),
    convCase('conv3x3 s3 same', [2, 10, 8, 2], [3, 3, 2, 3], 3, 'same'),
    convCase('conv1x1 pad 1 (pad > kernel)', [1, 4, 4, 2], [1, 1, 2, 3], 1, [[0, 0], [1, 1], [1, 1], [0, 0]]),
    {
      name: 'pad then conv3x3 valid',
      inputs: { x: normalInput('padconv-x', [2, 6, 6, 3]), w: normalInput('padconv-w', [3, 3, 3, 4], 0.3) },
      saliencyInput: 'x',
      fn: ({ x, w }) => tf.conv2d(tf.pad(x as T4, [[0, 0], [1, 1], [1, 1], [0, 0]]), w as T4, 1, 'valid'),
    },
    {
      name: 'StdConv (weight standardisation)',
      inputs: { x: normalInput('std-x', [2, 5, 5, 3]), w: normalInput('std-w', [3, 3, 3, 4], 0.3) },
      saliencyInput: 'x',
      fn: ({ x, w }) => tf.conv2d(x as T4, standardiseWeights(w as T4), 1, 'same'),
    },
    {
      name: 'GroupNorm',
      inputs: {
        x: normalInput('gn-x', [2, 4, 4, 8]),
        gamma: normalInput('gn-g', [8], 0.1, 1), beta: normalInput('gn-b', [8], 0.1),
      },
      saliencyInput: 'x',
      fn: ({ x, gamma, beta }) => groupNorm(x as T4, 4, gamma, beta),
    },
    unary('relu', [3, 7], tf.relu),
    unary('maxPool 3x3 s2 same', [2, 7, 7, 3], (x) => tf.maxPool(x as T4, 3, 2, 'same')),
    unary('maxPool 3x3 s2 same, all negative', [2, 7, 7, 3], (x) => tf.maxPool(x as T4, 3, 2, 'same'), -5),
    unary('maxPool pad1 3x3 s2 valid', [2, 8, 8, 2], (x) => tf.maxPool(tf.pad(x as T4, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid')),
    unary('maxPool 2x2 s2', [1, 6, 6, 2], (x) => tf.maxPool(x as T4, 2, 2, 'valid')),
    unary('maxPool 3x3 s1 same', [1, 5, 5, 2], (x) => tf.maxPool(x as T4, 3, 1, 'same')),
    {
      name: 'maxPool 3x3 s2 same, tied values',
      inputs: { x: tiedInput('mp-tie', [2, 7, 7, 3]) },
      saliencyInput: 'x',
      fn: ({ x }) => tf.maxPool(x as T4, 3, 2, 'same'),
    },
    unary('avgPool 2x2 s2', [2, 6, 6, 3], (x) => tf.avgPool(x as T4, 2, 2, 'valid')),
    unary('avgPool 3x3 s2 same', [2, 7, 7, 3], (x) => tf.avgPool(x as T4, 3, 2, 'same')),
    unary('global average pool', [2, 5, 5, 4], (x) => tf.mean(x, [1, 2])),
    {
      name: 'dense matMul + bias',
      inputs: { x: normalInput('dense-x', [4, 6]), w: normalInput('dense-w', [6, 5], 0.4), b: normalInput('dense-b', [5], 0.1) },
      saliencyInput: 'x',
      fn: ({ x, w, b }) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), b),
    },
    {
      name: 'matMul transposed operands',
      inputs: { a: normalInput('mmt-a', [6, 4]), b: normalInput('mmt-b', [5, 6]) },
      saliencyInput: 'a',
      fn: ({ a, b }) => tf.matMul(tf.tanh(a), b, true, true),
    },
    {
      name: 'matMul batched x shared',
      inputs: { a: normalInput('mmb-a', [3, 4, 5]), b: normalInput('mmb-b', [5, 2]) },
      saliencyInput: 'a',
      fn: ({ a, b }) => tf.matMul(tf.tanh(a), b),
    },
    {
      name: 'matMul shared x batched (GN-style sum)',
      inputs: { x: normalInput('mms-x', [3, 6, 4]), w: normalInput('mms-w', [1, 2, 6]) },
      saliencyInput: 'x',
      fn: ({ x, w }) => tf.matMul(w, tf.square(x)),
    },
    {
      name: 'matMul both batched',
      inputs: { a: normalInput('mmbb-a', [2, 3, 4]), b: normalInput('mmbb-b', [2, 4, 3]) },
      saliencyInput: 'a',
      fn: ({ a, b }) => tf.matMul(tf.square(a), b, false, false),
    },
    unary('softmax', [3, 5], (x) => tf.softmax(x)),
    unary('logSoftmax', [3, 5], (x) => tf.logSoftmax(x)),
    unary('logSumExp', [3, 5], (x) => tf.logSumExp(x, 1)),
    {
      name: 'gather target logit (batchDims 1)',
      inputs: { x: normalInput('gather-x', [4, 5]), y: intInput('gather-y', [4], 5) },
      saliencyInput: 'x',
      fn: ({ x, y }) => tf.gather(x, y, 1, 1),
    },
    {
      name: 'gather rows',
      inputs: { x: normalInput('gatherrows-x', [5, 3]), y: intInput('gatherrows-y', [7], 5) },
      saliencyInput: 'x',
      fn: ({ x, y }) => tf.gather(x, y),
    },
    {
      name: 'oneHot cross-entropy',
      inputs: { x: normalInput('ce-x', [4, 5]), y: intInput('ce-y', [4], 5) },
      saliencyInput: 'x',
      fn: ({ x, y }) => tf.neg(tf.sum(tf.mul(tf.oneHot(y, 5), tf.logSoftmax(x)), 1)),
    },
    unary('clipByValue', [3, 6], (x) => tf.clipByValue(x, -0.5, 0.7)),
    unary('sign', [3, 6], (x) => tf.mul(tf.sign(x), x)),
    {
      name: 'where',
      inputs: { c: boolInput('where-c', [3, 6]), a: normalInput('where-a', [3, 6]), b: normalInput('where-b', [3, 6]) },
      saliencyInput: 'a',
      fn: ({ c, a, b }) => tf.where(c, tf.square(a), tf.mul(a, b)),
    },
    unary('abs', [3, 6], (x) => tf.abs(x)),
    unary('square', [3, 6], (x) => tf.square(x)),
    unary('sqrt', [3, 6], (x) => tf.sqrt(x), 4),
    unary('rsqrt', [3, 6], (x) => tf.rsqrt(x), 4),
    unary('exp log', [3, 6], (x) => tf.log(tf.add(tf.exp(x), 1))),
    unary('sigmoid tanh', [3, 6], (x) => tf.mul(tf.sigmoid(x), tf.tanh(x))),
    unary('max reduction', [3, 6], (x) => tf.max(x, 1)),
    unary('maximum minimum', [3, 6], (x) => tf.add(tf.maximum(x, 0.2), tf.minimum(x, -0.1))),
    unary('div', [3, 6], (x) => tf.div(x, tf.add(tf.square(x), 1))),
    unary('squaredDifference', [3, 6], (x) => tf.squaredDifference(x, 0.3)),
    unary('pow', [3, 6], (x) => tf.pow(x, 3)),
    unary('concat slice', [2, 4, 4, 3], (x) => tf.concat([tf.slice(x, [0, 1, 0, 0], [2, 2, 4, 3]), x], 1)),
    unary('transpose tile', [2, 3, 4], (x) => tf.tile(tf.transpose(x, [2, 0, 1]), [1, 2, 1])),
    unary('reverse (flip)', [2, 4, 4, 3], (x) => tf.mul(tf.reverse(x, 2), x)),
    bitUnitCase(),
  ];
  return cases;
}
