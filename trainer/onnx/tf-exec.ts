import * as tf from '@tensorflow/tfjs-core';
import type { Graph, GraphNode, Operand } from './graph.ts';
import { conv2d, conv2dBias } from './tf-conv.ts';

/**
 * Runs a Graph with tfjs, NHWC. Differentiable with respect to the parameters (training) and the reference the
 * ONNX export is tested against. Call inside tf.tidy (or a gradient function): intermediate tensors are not disposed.
 */
export function runGraph(
  graph: Graph, params: Record<string, tf.Tensor>, inputs: Record<string, tf.Tensor4D>,
): Record<string, tf.Tensor4D> {
  const env = new Map<string, tf.Tensor4D>();
  for (const i of graph.inputs) {
    const t = inputs[i.name];
    if (!t) throw new Error(`runGraph: missing input "${i.name}"`);
    if (t.rank !== 4 || t.shape[3] !== i.channels) throw new Error(`runGraph: input "${i.name}" must be [B, H, W, ${i.channels}], got [${t.shape}]`);
    env.set(i.name, t);
  }
  const get = (name: string): tf.Tensor4D => {
    const t = env.get(name);
    if (!t) throw new Error(`runGraph: tensor "${name}" used before it is computed`);
    return t;
  };
  const operand = (o: Operand): tf.Tensor4D | tf.Scalar => (typeof o === 'number' ? tf.scalar(o) : get(o));
  const param = (name: string): tf.Tensor => {
    const p = params[name];
    if (!p) throw new Error(`runGraph: missing parameter "${name}"`);
    return p;
  };
  for (const n of graph.nodes) env.set(n.out, evalNode(n, get, operand, param));
  const out: Record<string, tf.Tensor4D> = {};
  for (const o of graph.outputs) out[o] = get(o);
  return out;
}

function evalNode(
  n: GraphNode,
  get: (name: string) => tf.Tensor4D,
  operand: (o: Operand) => tf.Tensor4D | tf.Scalar,
  param: (name: string) => tf.Tensor,
): tf.Tensor4D {
  switch (n.op) {
    case 'conv2d': {
      const x = get(n.x), w = param(n.weight) as tf.Tensor4D;
      return n.bias ? conv2dBias(x, w, param(n.bias) as tf.Tensor1D, n) : conv2d(x, w, n);
    }
    case 'relu': return tf.relu(get(n.x));
    case 'elu': return tf.elu(get(n.x));
    case 'sigmoid': return tf.sigmoid(get(n.x));
    case 'tanh': return tf.tanh(get(n.x));
    case 'leakyRelu': return tf.leakyRelu(get(n.x), n.alpha);
    case 'add': return tf.add(operand(n.a), operand(n.b)) as tf.Tensor4D;
    case 'sub': return tf.sub(operand(n.a), operand(n.b)) as tf.Tensor4D;
    case 'mul': return tf.mul(operand(n.a), operand(n.b)) as tf.Tensor4D;
    case 'div': return tf.div(operand(n.a), operand(n.b)) as tf.Tensor4D;
    case 'concat': return tf.concat(n.xs.map(get), n.axis);
    case 'resize': {
      const x = get(n.x);
      const size: [number, number] = [x.shape[1] * n.scale, x.shape[2] * n.scale];
      return n.mode === 'nearest' ? upsampleNearest(x, n.scale) : tf.image.resizeBilinear(x, size, false, true);
    }
    case 'clip': return tf.clipByValue(get(n.x), n.min, n.max);
    case 'transpose': return tf.transpose(get(n.x), n.perm);
    case 'slice': {
      const x = get(n.x);
      const begin = [0, 0, 0, 0];
      const size = [...x.shape];
      begin[n.axis] = n.start;
      size[n.axis] = n.end - n.start;
      return tf.slice(x, begin, size);
    }
  }
}

/**
 * Nearest ×s up-sampling with its gradient written as a reshape + sum: each input pixel's gradient is the sum of
 * its s×s copies. (The wasm ResizeNearestNeighborGrad kernel took ~10× longer than this on the inpainter's shapes.)
 */
const nearestCache = new Map<number, (x: tf.Tensor4D) => tf.Tensor4D>();
function upsampleNearest(x: tf.Tensor4D, s: number): tf.Tensor4D {
  let f = nearestCache.get(s);
  if (!f) {
    const g = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const t = args[0] as tf.Tensor4D;
      const [B, H, W, C] = t.shape;
      return {
        value: tf.image.resizeNearestNeighbor(t, [H * s, W * s], false, false),
        gradFunc: (dy: tf.Tensor) => tf.sum(tf.reshape(dy, [B, H, s, W, s, C]), [2, 4]),
      };
    });
    f = (t) => g(t) as tf.Tensor4D;
    nearestCache.set(s, f);
  }
  return f(x);
}
