import * as tf from '@tensorflow/tfjs-core';
import type { BackendChoice } from './backend.ts';
import type { TrainBatch } from './data.ts';
import type { CfLossKind, MethodSpec } from './method.ts';
import { parameterSpecs, type ModelConfig } from './model-config.ts';
import { trainStep, type SalBatch, type StepContext, type StepStats } from './step.ts';
import type { SalNorm } from './losses.ts';

/**
 * What the data-parallel coordinator (parallel.ts) and its workers (parallel-worker.ts) share: the layout of the flat
 * weight and gradient vectors in the SharedArrayBuffers, one shard's gradient (step.ts's trainStep with a recording
 * optimizer), loading published weights, and the messages between the threads.
 */

/** Offsets of each variable in the flat weight / gradient vectors (model.variables order). */
export interface ParamLayout { shapes: number[][]; offsets: number[]; total: number }

/** The flat layout of `config`'s parameters, in parameterSpecs order (= model.variables order). */
export function paramLayout(config: ModelConfig): ParamLayout {
  const shapes = parameterSpecs(config).map((s) => s.shape);
  const offsets: number[] = [];
  let total = 0;
  for (const sh of shapes) { offsets.push(total); total += sh.reduce((a, b) => a * b, 1); }
  return { shapes, offsets, total };
}

/**
 * A stand-in optimizer for `trainStep`: it copies the gradients it is handed into `out` (flat, in the order of
 * `variables`) instead of applying them. `captured` tells whether trainStep got that far (it skips the update on a
 * non-finite loss or gradient).
 */
export function recordingOptimizer(variables: readonly tf.Variable[], layout: ParamLayout, out: Float32Array): { optimizer: tf.Optimizer; captured: () => boolean; reset: () => void } {
  const index = new Map(variables.map((v, i) => [v.name, i]));
  let captured = false;
  const optimizer = {
    applyGradients(grads: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
      const list = Array.isArray(grads) ? grads : Object.entries(grads).map(([name, tensor]) => ({ name, tensor }));
      if (list.length !== variables.length) throw new Error(`parallel: expected ${variables.length} gradients, got ${list.length}`);
      for (const { name, tensor } of list) {
        const i = index.get(name);
        if (i === undefined) throw new Error(`parallel: gradient for unknown variable ${name}`);
        out.set(tensor.dataSync() as Float32Array, layout.offsets[i]);
      }
      captured = true;
    },
  };
  return { optimizer: optimizer as unknown as tf.Optimizer, captured: () => captured, reset: () => { captured = false; } };
}

/** What one shard reports: trainStep's stats, and whether its gradient (mean over the shard's images) was recorded. */
export interface ShardResult {
  stats: StepStats;
  captured: boolean;
  /** when the shard's compute started and ended, ms since the epoch (performance.timeOrigin + now): overlap checks */
  span: [number, number];
}

/** The loss configuration a shard needs besides the model (a StepContext without model and optimizer). */
export interface ShardLoss { method: MethodSpec; cfLoss: CfLossKind; numClasses: number; salNorm?: SalNorm; salBatch?: SalBatch }

/**
 * One shard's gradient, in this thread: trainStep on `shard` with the recording optimizer, no clipping, no
 * weight decay. `out` receives the gradient of the shard's mean loss.
 */
export function shardGradient(model: StepContext['model'], loss: ShardLoss, shard: TrainBatch, seed: number, layout: ParamLayout, out: Float32Array): ShardResult {
  const rec = recordingOptimizer(model.variables, layout, out);
  const ctx: StepContext = {
    model, optimizer: rec.optimizer, method: loss.method, cfLoss: loss.cfLoss, numClasses: loss.numClasses, salNorm: loss.salNorm, salBatch: loss.salBatch, clipNorm: Infinity, weightDecay: 0,
  };
  const t0 = performance.timeOrigin + performance.now();
  const stats = trainStep(ctx, shard, seed);
  return { stats, captured: rec.captured(), span: [t0, performance.timeOrigin + performance.now()] };
}

/** Reads a step's weights into `model`'s variables (worker side). */
export function loadFlatWeights(variables: readonly tf.Variable[], layout: ParamLayout, flat: Float32Array): void {
  variables.forEach((v, i) => {
    const t = tf.tensor(flat.subarray(layout.offsets[i], layout.offsets[i] + v.size), v.shape, 'float32');
    v.assign(t);
    t.dispose();
  });
}

// ---- worker protocol ----------------------------------------------------------------------------------------

/** A worker's workerData (plus its slot index): its backend, the model it mirrors and the shared buffers. */
export interface WorkerInit {
  backend: BackendChoice;
  model: ModelConfig;
  /** [0]: weights version (Atomics), then nothing; weights follow in `weights` */
  control: SharedArrayBuffer;
  weights: SharedArrayBuffer;
  grads: SharedArrayBuffer;
}
/** Coordinator → worker: compute `shard`'s gradient on the weights of `version`. */
export interface StepRequest { id: number; version: number; shard: TrainBatch; loss: ShardLoss; seed: number }
/** Worker → coordinator: start-up, log lines, and each request's result or error. */
export type WorkerReply =
  | { ready: true }
  | { bootError: string }
  | { log: string }
  | { id: number; result: ShardResult; gradsVersion: number }
  | { id: number; error: { message: string; stack?: string } };
