import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../../manifests/rng.ts';
import type { Graph, Weights } from '../onnx/graph.ts';

/**
 * Seeded initial weights: He-normal filters (std √(2 / fan-in)), zero biases. The output layers start 10× smaller so
 * an untrained network answers near 0 (mid-grey) instead of saturating tanh.
 */
export function initWeights(graph: Graph, seed: number): Weights {
  const w: Weights = {};
  for (const p of graph.params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (p.init === 'he') {
      const rng = rngFor('inpainter-init', seed, p.name);
      const fanIn = p.shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const std = Math.sqrt(2 / fanIn) * (p.name.endsWith('.out.w') ? 0.1 : 1);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    }
    w[p.name] = { shape: [...p.shape], data };
  }
  return w;
}

export function toVariables(w: Weights): Record<string, tf.Variable> {
  return Object.fromEntries(Object.entries(w).map(([k, v]) => [k, tf.variable(tf.tensor(v.data, v.shape), true, `inpainter/${k}`)]));
}

export function fromVariables(vars: Record<string, tf.Variable>): Weights {
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) }]));
}
