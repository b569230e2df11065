import * as tf from '@tensorflow/tfjs-core';
import type { Worker } from 'node:worker_threads';
import { startTsWorkers } from '../common/worker-threads.ts';
import { UserError } from '../manifests/errors.ts';
import type { BackendChoice } from './backend.ts';
import type { TrainBatch } from './data.ts';
import type { ModelConfig } from './model-config.ts';
import {
  paramLayout, shardGradient, type ParamLayout, type ShardLoss, type ShardResult, type StepRequest, type WorkerInit, type WorkerReply,
} from './parallel-protocol.ts';
import { shardBatch, shardSeed, sliceBatch } from './parallel-shards.ts';
import { applyClippedUpdate, salBatchOf, trainStep, type StepContext, type StepStats } from './step.ts';

/**
 * Data-parallel training steps on worker threads (docs/cluster.md).
 *
 * Why: tfjs's wasm backend runs one thread under Node (docs/backends-and-kernels.md, "Multithreading"), so one training process
 * uses one core. Each worker thread here has its own tfjs engine and wasm instance, and its own copy of the model.
 * Per step the batch is split into shards of whole originals (each with its own CF/F images), every shard's
 * loss-sum gradient is computed on its own thread, and this thread sums them, divides by the number of images of
 * the whole batch and applies the optimizer — the gradient step.ts's `trainStep` takes on the whole batch, because
 * every loss term is per image (GroupNorm: no batch statistics).
 *
 * The loss composition is step.ts's own: each shard runs `trainStep` with an optimizer that only records the
 * gradients it is handed (clipping and weight decay switched off), so nothing of the objective is restated here.
 * Weights go to the workers and gradients come back through SharedArrayBuffers (no copies in messages).
 *
 * This module is the coordinator (startParallelStep, the averaging and the update). Batch sharding is in
 * parallel-shards.ts; the flat weight/gradient layout, one shard's gradient and the worker messages are in
 * parallel-protocol.ts. Both are re-exported here.
 */

export { shardBatch, shardSeed, sliceBatch } from './parallel-shards.ts';
export {
  loadFlatWeights, paramLayout, recordingOptimizer, shardGradient,
  type ParamLayout, type ShardLoss, type ShardResult, type StepRequest, type WorkerInit, type WorkerReply,
} from './parallel-protocol.ts';

/** The buffers one shard's thread reads the weights from and writes its gradient to. */
interface Slot {
  worker: Worker;
  grads: Float32Array;
  control: Int32Array;
  pending: { resolve: (r: ShardResult) => void; reject: (e: Error) => void } | null;
}

export interface ParallelStepOptions {
  /** threads computing each step, this one included when computeOnMain (2 on a 2-core machine); 1 = plain trainStep */
  threads: number;
  /** the model every worker mirrors: ctx.model.config */
  model: ModelConfig;
  /** the backend the workers use: initBackend's resolved `name` in this thread ('wasm', 'cpu', 'tensorflow') */
  backend: BackendChoice;
  /** this thread computes a shard too (default true): one fewer model copy, and one fewer thread than cores */
  computeOnMain?: boolean;
  log?: (line: string) => void;
}

export interface AveragedGradients {
  /** gradient of (Σ over shards of the shard loss sums) / (images in the batch), per variable (model.variables order) */
  grads: Float32Array[];
  /** summed over shards: total is the batch's mean loss, terms and counts are sums; gradNorm is the norm of `grads` */
  stats: StepStats;
  /** each shard's compute [start, end] in ms since the epoch, shard order */
  spans: [number, number][];
}

export interface ParallelStep {
  /** threads that compute a step */
  readonly threads: number;
  /** Drop-in for `trainStep(ctx, batch, stepSeed)`: same gradient (up to float rounding) and the same update. */
  step(ctx: StepContext, batch: TrainBatch, stepSeed: number): Promise<StepStats>;
  /** The averaged gradient of a step without applying it (tests, diagnostics). */
  gradients(ctx: StepContext, batch: TrainBatch, stepSeed: number): Promise<AveragedGradients>;
  close(): Promise<void>;
}

/**
 * Starts `threads − 1` workers (or `threads` when computeOnMain is false), each with its own backend and model copy.
 * Call after initBackend in this thread; every step reads the weights of `ctx.model` afresh.
 */
export async function startParallelStep(opts: ParallelStepOptions): Promise<ParallelStep> {
  const threads = Math.max(1, Math.floor(opts.threads));
  if (threads > 1 && (opts.backend === 'tensorflow' || opts.backend === 'tensorflow-gpu')) {
    throw new UserError(`--workers ${threads} is for the wasm and cpu backends: tfjs-node (libtensorflow) already uses every core in one process`, {
      fix: 'drop --workers (or pass --workers 1) with --backend tensorflow / tensorflow-gpu; set --threads for its intra-op thread count',
    });
  }
  const onMain = opts.computeOnMain ?? true;
  const layout = paramLayout(opts.model);
  const nWorkers = threads === 1 && onMain ? 0 : onMain ? threads - 1 : threads;
  const control = new SharedArrayBuffer(4 * (1 + nWorkers));
  const controlI32 = new Int32Array(control);
  const weightsBuf = new SharedArrayBuffer(4 * layout.total);
  const weights = new Float32Array(weightsBuf);
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  let failed: Error | null = null;

  const slots: Slot[] = [];
  const fail = (e: Error): void => {
    if (failed) return;
    failed = e;
    for (const s of slots) { s.pending?.reject(e); s.pending = null; }
  };
  const gradBufs = Array.from({ length: nWorkers }, () => new SharedArrayBuffer(4 * layout.total));
  const workers = await startTsWorkers(new URL('./parallel-worker.ts', import.meta.url), nWorkers, (w) => ({
    label: 'parallel worker',
    workerData: { backend: opts.backend, model: opts.model, control, weights: weightsBuf, grads: gradBufs[w], slot: w } satisfies WorkerInit & { slot: number },
  }));
  workers.forEach((worker, w) => {
    const slot: Slot = { worker, grads: new Float32Array(gradBufs[w]), control: controlI32, pending: null };
    slots.push(slot);
    worker.on('message', (m: WorkerReply) => {
      if ('log' in m) { log(`[worker ${w + 1}] ${m.log}`); return; }
      if (!('id' in m)) return;
      const p = slot.pending;
      slot.pending = null;
      if (!p) return;
      if ('error' in m) {
        const e = new Error(`parallel worker ${w + 1}: ${m.error.message}`);
        e.stack = m.error.stack;
        p.reject(e);
        return;
      }
      // pairs with the worker's Atomics.store after it wrote the gradient: its writes are visible from here on
      if (Atomics.load(controlI32, 1 + w) !== m.gradsVersion) { p.reject(new Error(`parallel worker ${w + 1}: gradient buffer out of step`)); return; }
      p.resolve(m.result);
    });
    worker.on('error', (e) => fail(e));
    worker.on('exit', (c) => fail(new Error(`parallel worker ${w + 1} exited with code ${c}`)));
  });

  let version = 0;
  let nextId = 0;
  const mainGrads = onMain ? new Float32Array(layout.total) : null;

  const publishWeights = (ctx: StepContext): void => {
    const vars = ctx.model.variables;
    const mismatch = vars.length !== layout.shapes.length ? `${vars.length} variables, not ${layout.shapes.length}`
      : vars.map((v, i) => (v.shape.join() === layout.shapes[i].join() ? null : `${v.name} is [${v.shape}], not [${layout.shapes[i]}]`)).find((m) => m);
    if (mismatch) throw new Error(`parallel: the model does not match the workers' model (${opts.model.name}): ${mismatch}`);
    vars.forEach((v, i) => {
      weights.set(v.dataSync() as Float32Array, layout.offsets[i]);
    });
    version++;
    // release: the weight writes above happen-before a worker's Atomics.load that sees this version
    Atomics.store(controlI32, 0, version);
  };

  const runOnWorker = (slot: Slot, shard: TrainBatch, loss: ShardLoss, seed: number): Promise<ShardResult> => {
    if (failed) return Promise.reject(failed);
    return new Promise<ShardResult>((resolve, reject) => {
      slot.pending = { resolve, reject };
      const req: StepRequest = { id: nextId++, version, shard, loss, seed };
      const transfer = [shard.x.buffer, shard.labels.buffer, shard.role.buffer, shard.parent.buffer, shard.term.buffer, shard.maskUsable.buffer];
      if (shard.objMask) transfer.push(shard.objMask.buffer);
      slot.worker.postMessage(req, transfer as ArrayBuffer[]);
    });
  };

  const gradients = async (ctx: StepContext, batch: TrainBatch, stepSeed: number): Promise<AveragedGradients> => {
    if (failed) throw failed;
    const loss: ShardLoss = { method: ctx.method, cfLoss: ctx.cfLoss, numClasses: ctx.numClasses, salNorm: ctx.salNorm, salBatch: salBatchOf(batch, ctx.method) };
    const shards = threads === 1 ? [batch] : shardBatch(batch, threads);
    const mainShard = onMain ? 0 : -1;
    if (shards.length > (onMain ? 1 : 0)) publishWeights(ctx);
    // fresh copies for transfer: shardBatch returns the batch itself when it does not split
    const remote = shards.map((sh, k) => (k === mainShard ? null : runOnWorker(slots[onMain ? k - 1 : k], sh === batch ? sliceBatch(batch, 0, batch.nOrig) : sh, loss, shardSeed(stepSeed, k))));
    // settle every worker before returning or throwing, so that no shard is still running when the next step starts
    const settled = Promise.allSettled(remote.filter((p): p is Promise<ShardResult> => p !== null));
    const results: { r: ShardResult; g: Float32Array }[] = [];
    try {
      if (onMain) results.push({ r: shardGradient(ctx.model, loss, shards[0], shardSeed(stepSeed, 0), layout, mainGrads!), g: mainGrads! });
    } catch (e) {
      await settled;
      throw e;
    }
    const fromWorkers = await settled;
    for (const [j, o] of fromWorkers.entries()) {
      if (o.status === 'rejected') throw o.reason;
      results.push({ r: o.value, g: slots[j].grads });
    }
    return combine(results, layout);
  };

  return {
    threads,
    gradients,
    async step(ctx, batch, stepSeed) {
      if (threads === 1 && onMain) return trainStep(ctx, batch, stepSeed);
      const { grads, stats } = await gradients(ctx, batch, stepSeed);
      return applyAveraged(ctx, grads, stats);
    },
    async close() {
      failed ??= new Error('parallel step closed');
      await Promise.all(slots.map((s) => { s.worker.removeAllListeners('exit'); return s.worker.terminate(); }));
    },
  };
}

/** Σ_k n_k·g_k / Σ_k n_k in float64, and the shards' stats summed. */
function combine(results: { r: ShardResult; g: Float32Array }[], layout: ParamLayout): AveragedGradients {
  const nImages = results.reduce((a, { r }) => a + r.stats.nImages, 0);
  const acc = new Float64Array(layout.total);
  let totalSum = 0;
  let skipped = false;
  const terms = { ce: 0, cf: 0, f: 0, fgsm: 0, sal: 0 };
  const counts = { orig: 0, cf: 0, f: 0, fgsm: 0, sal: 0 };
  for (const { r, g } of results) {
    const s = r.stats;
    totalSum += s.total * s.nImages;
    for (const key of Object.keys(terms) as (keyof typeof terms)[]) terms[key] += s.terms[key];
    for (const key of Object.keys(counts) as (keyof typeof counts)[]) counts[key] += s.counts[key];
    if (!r.captured || s.skipped) { skipped = true; continue; }
    const w = s.nImages;
    for (let i = 0; i < acc.length; i++) acc[i] += w * g[i];
  }
  let sq = 0;
  const grads = layout.shapes.map((_, v) => {
    const lo = layout.offsets[v], hi = v + 1 < layout.offsets.length ? layout.offsets[v + 1] : layout.total;
    const out = new Float32Array(hi - lo);
    for (let i = lo; i < hi; i++) { const m = acc[i] / nImages; out[i - lo] = m; sq += m * m; }
    return out;
  });
  const total = totalSum / nImages;
  const gradNorm = skipped ? NaN : Math.sqrt(sq);
  skipped ||= !Number.isFinite(gradNorm) || !Number.isFinite(total);
  return { grads, stats: { total, terms, counts, nImages, gradNorm, clipped: false, skipped }, spans: results.map(({ r }) => r.span) };
}

/**
 * The update of step.ts's trainStep on an already averaged gradient: clip to global norm ctx.clipNorm, add L2 weight
 * decay after clipping, apply with ctx.optimizer (keys: variable names, in model.variables order). Skips the
 * update on a non-finite loss or gradient, as trainStep does.
 */
export function applyAveraged(ctx: StepContext, grads: Float32Array[], stats: StepStats): StepStats {
  if (stats.skipped) return { ...stats, clipped: false };
  const named: tf.NamedTensorMap = {};
  ctx.model.variables.forEach((v, i) => { named[v.name] = tf.tensor(grads[i], v.shape, 'float32'); });
  applyClippedUpdate(ctx, named, stats.gradNorm);
  tf.dispose(Object.values(named));
  return { ...stats, clipped: stats.gradNorm > ctx.clipNorm };
}
