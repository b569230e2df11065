/**
 * Gradient definitions that tfjs-core 4.22 lacks or gets wrong for double backprop (the saliency loss of
 * DESIGN §4 differentiates, w.r.t. the weights, a loss built from an input gradient). These are
 * backend-independent (`tf.registerGradient`), so they apply to cpu, wasm and tfjs-node alike.
 *
 * 0. AvgPool: core's first-order gradient is wrong at padded borders (see avgPoolGrad below).
 * 1. Gradients of gradient kernels (needed because the input gradient of a net runs through them):
 *    MaxPoolGrad, AvgPoolGrad, Conv2DBackpropFilter (Conv2DBackpropInput already has one in core).
 * 2. Zero gradients for comparisons / logical ops. The first-order gradients of max, maximum, minimum and
 *    clipByValue build masks with Equal/LessEqual/LogicalAnd...; when those gradients are themselves taped,
 *    backprop walks through the mask ops and core throws "gradient function not found for Equal".
 * 3. BatchMatMul with a batch-broadcast operand (x[B,T,K]·w[K,N], or a shared ones/0-1 matrix times x[B,K,N]):
 *    core returns a gradient with the broadcast batch shape and backprop throws on the shape mismatch. We sum it
 *    back, and when one operand is shared we fold the batch into the contracted axis so the gradient is one plain
 *    matmul (not a batched one, which the wasm backend runs as a scalar loop).
 * 4. Exp, Sigmoid, Tanh, Softmax, Pow: core saves the *output* for the backward pass. The saved copy is put on
 *    the tape before the node that produced it, so a second-order pass cannot see that it depends on x: d²/dx² of
 *    exp throws "Cannot compute gradient", and inside bigger graphs the term is silently dropped
 *    (tensorflow/tfjs#3252). We save the input instead and recompute the output inside the gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type GradConfig, type NamedAttrMap } from '@tensorflow/tfjs-core';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
type Pair = number | [number, number];
const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: object = {}): tf.Tensor =>
  tf.engine().runKernel(name, inputs, attrs as NamedAttrMap) as tf.Tensor;

const maxPoolGradGrad: GradConfig = {
  kernelName: 'MaxPoolGrad',
  inputsToSave: ['input'],
  gradFunc: (ddx, saved, attrs) => {
    const [input] = saved;
    const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as {
      filterSize: Pair; strides: Pair; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil';
    };
    const outShape = backend_util.computePool2DInfo(
      input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode).outShape;
    const dd = ddx as tf.Tensor;
    return {
      // MaxPoolGrad routes dy[o] to x[argmax(o)]; its adjoint reads ddx back at the same argmax
      dy: () => {
        const [, indexes] = tf.engine().runKernel('MaxPoolWithArgmax', { x: input },
          { filterSize, strides, pad, includeBatchInIndex: true } as unknown as NamedAttrMap) as tf.Tensor[];
        const flat = tf.reshape(indexes, [-1]);
        // -1 marks an all-NaN window: nothing was routed there
        const valid = tf.greaterEqual(flat, 0);
        const picked = tf.gather(tf.reshape(dd, [-1]), tf.maximum(flat, tf.scalar(0, 'int32')));
        return tf.reshape(tf.where(valid, picked, tf.zerosLike(picked)), outShape);
      },
      // piecewise constant in the pooled input and the pooled output
      input: () => tf.zerosLike(dd),
      output: () => tf.zeros(outShape),
    };
  },
};

/** AvgPool divides by the number of in-bounds window elements; per output position, window size / that count */
function avgPoolBorderScale(info: backend_util.Conv2DInfo): Float32Array | null {
  const { inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const inside = (o: number, s: number, pad: number, f: number, n: number): number =>
    Math.min(n, o * s - pad + f) - Math.max(0, o * s - pad);
  const scale = new Float32Array(outHeight * outWidth);
  let any = false;
  for (let r = 0; r < outHeight; r++) {
    for (let c = 0; c < outWidth; c++) {
      const count = inside(r, strideHeight, top, filterHeight, inHeight) * inside(c, strideWidth, left, filterWidth, inWidth);
      scale[r * outWidth + c] = (filterHeight * filterWidth) / count;
      if (count !== filterHeight * filterWidth) any = true;
    }
  }
  return any ? scale : null;
}

/**
 * tfjs-core's AvgPool gradient calls the AvgPoolGrad kernel, which (cpu and wasm alike) divides by the full window
 * size, while AvgPool itself divides by the in-bounds count: with 'same' or explicit padding the border gradients
 * come out too small (3x3/2 'same' on 3x3: 1/9 where the derivative is 1/4). We pre-scale dy per output position.
 */
const avgPoolGrad: GradConfig = {
  kernelName: 'AvgPool',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as {
      filterSize: Pair; strides: Pair; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil';
    };
    const info = backend_util.computePool2DInfo(x.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    const scale = avgPoolBorderScale(info);
    return {
      x: () => {
        const g = scale ? tf.mul(dy as tf.Tensor, tf.tensor4d(scale, [1, info.outHeight, info.outWidth, 1])) : dy as tf.Tensor;
        return run('AvgPoolGrad', { dy: g, input: x }, { filterSize, strides, pad });
      },
    };
  },
};

const avgPoolGradGrad: GradConfig = {
  kernelName: 'AvgPoolGrad',
  inputsToSave: ['input'],
  gradFunc: (ddx, [input], attrs) => {
    const { filterSize, strides, pad } = attrs as unknown as { filterSize: Pair; strides: Pair; pad: Pad };
    const dd = ddx as tf.Tensor;
    const { top, bottom, left, right } = backend_util.computePool2DInfo(
      input.shape as [number, number, number, number], filterSize, strides, 1, pad).padInfo;
    return {
      // the kernel spreads dy[o]/(fh·fw) over the window's in-bounds cells, so its adjoint sums ddx over the window
      // and divides by fh·fw: an average pool of the zero-padded ddx
      dy: () => run('AvgPool', { x: tf.pad(dd, [[0, 0], [top, bottom], [left, right], [0, 0]]) },
        { filterSize, strides, pad: 'valid' }),
      input: () => tf.zerosLike(dd),
    };
  },
};

const conv2DBackpropFilterGrad: GradConfig = {
  kernelName: 'Conv2DBackpropFilter',
  inputsToSave: ['x', 'dy'],
  gradFunc: (ddw, saved, attrs) => {
    const [x, dy] = saved;
    const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
      strides: Pair; pad: Pad; dataFormat: string; dimRoundingMode?: string;
    };
    const filter = ddw as tf.Tensor;
    return {
      x: () => run('Conv2DBackpropInput', { dy, filter },
        { strides, pad, dataFormat, dimRoundingMode, inputShape: x.shape }),
      dy: () => run('Conv2D', { x, filter }, { strides, pad, dataFormat, dilations: 1, dimRoundingMode }),
    };
  },
};

function zeroGradient(kernelName: string, inputNames: string[]): GradConfig {
  return {
    kernelName,
    inputsToSave: inputNames,
    gradFunc: (_dy, saved) => {
      const grads: Record<string, () => tf.Tensor> = {};
      inputNames.forEach((name, i) => { grads[name] = () => tf.zeros(saved[i].shape, 'float32'); });
      return grads;
    },
  };
}

const ZERO_GRADIENT_KERNELS: Array<[string, string[]]> = [
  ['Equal', ['a', 'b']], ['NotEqual', ['a', 'b']], ['Less', ['a', 'b']], ['LessEqual', ['a', 'b']],
  ['Greater', ['a', 'b']], ['LogicalAnd', ['a', 'b']], ['LogicalOr', ['a', 'b']], ['LogicalXor', ['a', 'b']],
  ['LogicalNot', ['x']],
];

const expGrad: GradConfig = {
  kernelName: 'Exp',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.exp(x)) }),
};

const sigmoidGrad: GradConfig = {
  kernelName: 'Sigmoid',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({
    x: () => {
      const s = tf.sigmoid(x);
      return tf.mul(dy as tf.Tensor, tf.mul(s, tf.sub(1, s)));
    },
  }),
};

const tanhGrad: GradConfig = {
  kernelName: 'Tanh',
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({ x: () => tf.mul(tf.sub(1, tf.square(tf.tanh(x))), dy as tf.Tensor) }),
};

const softmaxGrad: GradConfig = {
  kernelName: 'Softmax',
  inputsToSave: ['logits'],
  gradFunc: (dy, [logits], attrs) => {
    const { dim } = attrs as unknown as { dim: number };
    return {
      logits: () => {
        const y = run('Softmax', { logits }, { dim });
        const dyTimesY = tf.mul(dy as tf.Tensor, y);
        return tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [dim], true), y));
      },
    };
  },
};

const powGrad: GradConfig = {
  kernelName: 'Pow',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b]) => {
    const g = dy as tf.Tensor;
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const reduceTo = (t: tf.Tensor, shape: number[]): tf.Tensor => {
      const axes = tf.broadcast_util.getReductionAxes(shape, outShape);
      return tf.reshape(axes.length ? tf.sum(t, axes) : t, shape);
    };
    return {
      a: () => {
        const e = tf.cast(b, 'float32');
        return reduceTo(tf.mul(g, tf.mul(e, tf.pow(a, tf.sub(e, 1)))), a.shape);
      },
      b: () => {
        const logA = tf.where(tf.greater(a, 0), tf.log(a), tf.zerosLike(a));
        return reduceTo(tf.mul(g, tf.mul(tf.pow(a, b), logA)), b.shape);
      },
    };
  },
};

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const batchOf = (shape: number[]): number => shape.slice(0, -2).reduce((x, y) => x * y, 1);
const swapLast = (t: tf.Tensor): tf.Tensor => tf.transpose(t, [...range(t.rank - 2), t.rank - 1, t.rank - 2]);

/** sums a gradient computed at the broadcast batch shape back to an operand's shape */
function sumToShape(t: tf.Tensor, shape: number[]): tf.Tensor {
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const lead = t.rank - shape.length;
  let r = lead > 0 ? tf.sum(t, range(lead)) : t;
  const axes = range(shape.length - 2).filter((i) => shape[i] === 1 && r.shape[i] !== 1);
  if (axes.length) r = tf.sum(r, axes, true);
  return tf.reshape(r, shape);
}

const batchMatMulGrad: GradConfig = {
  kernelName: 'BatchMatMul',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, [a, b], attrs) => {
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const g = dy as tf.Tensor;
    const batchA = batchOf(a.shape), batchB = batchOf(b.shape);
    if (a.shape.length === b.shape.length && a.shape.slice(0, -2).every((d, i) => d === b.shape[i])) {
      // same batch shape: tfjs-core's formulas (no transposes materialised)
      if (!transposeA && !transposeB) return { a: () => tf.matMul(g, b, false, true), b: () => tf.matMul(a, g, true, false) };
      if (!transposeA && transposeB) return { a: () => tf.matMul(g, b), b: () => tf.matMul(g, a, true, false) };
      if (transposeA && !transposeB) return { a: () => tf.matMul(b, g, false, true), b: () => tf.matMul(a, g) };
      return { a: () => tf.matMul(b, g, true, true), b: () => tf.matMul(g, a, true, true) };
    }
    const opA = (): tf.Tensor => (transposeA ? swapLast(a) : a); // [..., M, K]
    const opB = (): tf.Tensor => (transposeB ? swapLast(b) : b); // [..., K, N]
    const [m, n] = g.shape.slice(-2);
    const k = opA().shape[opA().rank - 1];
    const gradOpA = (): tf.Tensor => {
      if (batchA === 1 && batchB > 1) {
        // Σ_i dy_i·op(b)_iᵀ = [M, B·N]·[B·N, K]
        const dyF = tf.reshape(tf.transpose(tf.reshape(g, [batchB, m, n]), [1, 0, 2]), [m, batchB * n]);
        const bF = tf.reshape(tf.transpose(tf.reshape(opB(), [batchB, k, n]), [0, 2, 1]), [batchB * n, k]);
        return tf.matMul(dyF, bF);
      }
      return sumToShape(tf.matMul(g, opB(), false, true), [...a.shape.slice(0, -2), m, k]);
    };
    const gradOpB = (): tf.Tensor => {
      if (batchB === 1 && batchA > 1) {
        // Σ_i op(a)_iᵀ·dy_i = [B·M, K]ᵀ·[B·M, N]
        return tf.matMul(tf.reshape(opA(), [batchA * m, k]), tf.reshape(g, [batchA * m, n]), true, false);
      }
      return sumToShape(tf.matMul(opA(), g, true, false), [...b.shape.slice(0, -2), k, n]);
    };
    return {
      a: () => { const r = gradOpA(); return tf.reshape(transposeA ? swapLast(r) : r, a.shape); },
      b: () => { const r = gradOpB(); return tf.reshape(transposeB ? swapLast(r) : r, b.shape); },
    };
  },
};

export const EXTRA_GRADIENTS: GradConfig[] = [
  batchMatMulGrad, avgPoolGrad,
  maxPoolGradGrad, avgPoolGradGrad, conv2DBackpropFilterGrad,
  ...ZERO_GRADIENT_KERNELS.map(([name, inputs]) => zeroGradient(name, inputs)),
  expGrad, sigmoidGrad, tanhGrad, softmaxGrad, powGrad,
];
