/**
 * Gradient definitions that tfjs-core 4.22 lacks or gets wrong for double backprop (the saliency loss of
 * DESIGN §4 differentiates, w.r.t. the weights, a loss built from an input gradient). These are
 * backend-independent (`tf.registerGradient`), so they apply to cpu, wasm and tfjs-node alike.
 *
 * 1. Gradients of gradient kernels (needed because the input gradient of a net runs through them):
 *    MaxPoolGrad, AvgPoolGrad, Conv2DBackpropFilter (Conv2DBackpropInput already has one in core).
 * 2. Zero gradients for comparisons / logical ops. The first-order gradients of max, maximum, minimum and
 *    clipByValue build masks with Equal/LessEqual/LogicalAnd...; when those gradients are themselves taped,
 *    backprop walks through the mask ops and core throws "gradient function not found for Equal".
 * 3. Exp, Sigmoid, Tanh, Softmax, Pow: core saves the *output* for the backward pass. The saved copy is put on
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

const avgPoolGradGrad: GradConfig = {
  kernelName: 'AvgPoolGrad',
  gradFunc: (ddx, _saved, attrs) => {
    const { filterSize, strides, pad } = attrs as unknown as { filterSize: Pair; strides: Pair; pad: Pad };
    const dd = ddx as tf.Tensor;
    return {
      // AvgPoolGrad spreads dy[o]/count(o) over the window; the adjoint averages ddx over the same window
      dy: () => run('AvgPool', { x: dd }, { filterSize, strides, pad }),
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

export const EXTRA_GRADIENTS: GradConfig[] = [
  maxPoolGradGrad, avgPoolGradGrad, conv2DBackpropFilterGrad,
  ...ZERO_GRADIENT_KERNELS.map(([name, inputs]) => zeroGradient(name, inputs)),
  expGrad, sigmoidGrad, tanhGrad, softmaxGrad, powGrad,
];
