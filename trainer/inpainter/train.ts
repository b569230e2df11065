import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../../manifests/rng.ts';
import type { Weights } from '../onnx/graph.ts';
import { runGraph } from '../onnx/tf-exec.ts';
import { drawPairs, packPairs, type HolePair } from './batch.ts';
import type { BackgroundImage } from './data.ts';
import { DEFAULT_HOLES, type HoleOptions } from './holes.ts';
import { inpainterLoss, maskedL1 } from './loss.ts';
import { buildInpainter, SIZE_MULTIPLE, type InpainterGraph } from './network.ts';
import { fromVariables, initWeights, toVariables } from './weights.ts';

export interface TrainOptions {
  steps: number;
  batch: number;
  size: number;
  width: number;
  lr: number;
  seed: number;
  outsideWeight: number;
  holes: HoleOptions;
}

export { TRAIN_DEFAULTS } from './defaults.ts';

export interface TrainResult {
  net: InpainterGraph;
  weights: Weights;
  /** mean training loss over each logged window */
  history: { step: number; loss: number; holeL1: number }[];
}

/** Progress callback: step done (1-based), the step's loss. */
export type OnStep = (step: number, loss: number, holeL1: number) => void;

/**
 * Train the generator on background holes with Adam. Deterministic for a given backend: weights come from
 * `initWeights(seed)` and batch k from rngFor('inpainter-batch', seed, k).
 */
export async function trainInpainter(train: readonly BackgroundImage[], o: TrainOptions, onStep?: OnStep): Promise<TrainResult> {
  if (o.size % SIZE_MULTIPLE !== 0) throw new Error(`size must be a multiple of ${SIZE_MULTIPLE}, got ${o.size}`);
  const net = buildInpainter({ width: o.width });
  const vars = toVariables(initWeights(net.graph, o.seed));
  const opt = tf.train.adam(o.lr, 0.5, 0.999);
  const history: TrainResult['history'] = [];
  const S = o.size;
  try {
    for (let step = 0; step < o.steps; step++) {
      const rng = rngFor('inpainter-batch', o.seed, step);
      const { image, mask } = packPairs(train, drawPairs(train, o.batch, rng, o.holes, true), S);
      const x = tf.tensor4d(image, [o.batch, S, S, 3]);
      const m = tf.tensor4d(mask, [o.batch, S, S, 1]);
      let hole = 0;
      const loss = opt.minimize(() => {
        const out = runGraph(net.graph, vars, { image: x, mask: m });
        const l = inpainterLoss(out[net.fine], out[net.coarse], x, m, o.outsideWeight);
        hole = l.fineHole.dataSync()[0];
        return l.total;
      }, true)!;
      const lv = loss.dataSync()[0];
      tf.dispose([x, m, loss]);
      if (!Number.isFinite(lv)) throw new Error(`training diverged at step ${step + 1} (loss ${lv}); lower --lr`);
      history.push({ step: step + 1, loss: lv, holeL1: hole });
      onStep?.(step + 1, lv, hole);
      // Let progress output and other callbacks run between steps.
      await new Promise((r) => setImmediate(r));
    }
    return { net, weights: fromVariables(vars), history };
  } finally {
    tf.dispose(Object.values(vars));
    opt.dispose();
  }
}

/** Fixed held-out pairs (no flips): the same holes for every model and baseline that is scored on them. */
export function heldOutPairs(images: readonly BackgroundImage[], n: number, seed: number, holes: HoleOptions = DEFAULT_HOLES): HolePair[] {
  if (!images.length) return [];
  return drawPairs(images, n, rngFor('inpainter-heldout', seed), holes, false);
}

/**
 * Mean L1 in the hole, in 0–255 pixel units, of the network's output on held-out pairs (tfjs; the bench scores the
 * exported ONNX model through the runner, on the same pairs).
 */
export function scoreHeldOut(net: InpainterGraph, weights: Weights, images: readonly BackgroundImage[], pairs: readonly HolePair[], size: number, batch = 16): number {
  if (!pairs.length) return NaN;
  let sum = 0;
  let n = 0;
  for (let s = 0; s < pairs.length; s += batch) {
    const chunk = pairs.slice(s, s + batch);
    const { image, mask } = packPairs(images, chunk, size);
    sum += tf.tidy(() => {
      const params = Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
      const x = tf.tensor4d(image, [chunk.length, size, size, 3]);
      const m = tf.tensor4d(mask, [chunk.length, size, size, 1]);
      const out = runGraph(net.graph, params, { image: x, mask: m });
      // Per-pair hole means, then the mean over pairs (each hole counts once, whatever its size).
      let acc = 0;
      for (let b = 0; b < chunk.length; b++) {
        const sl = (t: tf.Tensor4D) => tf.slice(t, [b, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
        acc += maskedL1(sl(out[net.fine]), sl(x), sl(m)).hole.dataSync()[0];
      }
      return acc;
    });
    n += chunk.length;
  }
  return (sum / n) * 127.5;
}
