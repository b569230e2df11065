import * as tf from '@tensorflow/tfjs-core';
import cliProgress from 'cli-progress';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../manifests/errors.ts';
import { writeFileAtomic, writeJsonAtomic, stableStringify } from '../manifests/io.ts';
import { rngFor } from '../manifests/rng.ts';
import { TOOL_VERSION } from '../manifests/version.ts';
import { initBackend, type BackendChoice } from './backend.ts';
import { startParallelStep } from './parallel.ts';
import { describeReport, loadModel, loadWeightsInto, saveModel } from './checkpoint.ts';
import { evalBatches, loadDatasetIndex, missingCorpora, sourceDir, stepsPerEpoch, trainBatches, ROLE, type TrainBatch } from './data.ts';
import { evaluateRun, formatEvalTable, validationResult, EVAL_DEFAULTS, type EvalReport, type ValResult } from './evaluate.ts';
import { counterfactualLoss, crossEntropy, fgsmBackground, mixupBatch, saliencyPenalty, saliencyPenaltyAndLogits, softCrossEntropy } from './losses.ts';
import { methodSlug, parseMethod, type CfLossKind, type MethodSpec } from './method.ts';
import { createModel, presetConfig, type Model, type ModelConfig, type PresetName } from './model.ts';
import {
  plateauStep, presetFor, scheduledLr, scheduleToString, type OptimizerName, type PlateauState, type Schedule, type TrainPreset, type ValMetric,
} from './presets.ts';

/**
 * The training loop (DESIGN §5): per step, every image of the augmented batch (originals, their CF and F images,
 * FGSM images) goes through the model together, each term is a per-example loss, and the total is the sum of all
 * terms divided by the number of images. Gradients are clipped to global norm 1.0 before the optimizer step.
 * A run lives in `runs/<run-id>/`; rerunning the same command resumes it from the last finished epoch.
 */

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The hyperparameters a run trains with: the preset with the CLI overrides applied. */
export type Hyper = Omit<TrainPreset, 'name' | 'source' | 'warning'>;

export interface TrainOptions {
  method: string;
  dataset: string;
  seed?: number;
  corporaRoot?: string;
  runsRoot?: string;
  runId?: string;
  cfLoss?: CfLossKind;
  /** overrides of the preset */
  epochs?: number;
  batch?: number;
  lr?: number;
  optimizer?: OptimizerName;
  momentum?: number;
  weightDecay?: number;
  schedule?: Schedule;
  model?: PresetName;
  size?: number;
  patience?: number;
  valMetric?: ValMetric;
  clipNorm?: number;
  /** weights to start from (a checkpoint folder); the head is skipped when its class count differs */
  init?: string;
  backend?: 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
  threads?: number;
  /** threads per training step, data-parallel (trainer/parallel.ts; wasm/cpu backends); default 1 */
  workers?: number;
  /** stop after this many optimizer steps in total (smoke runs, tests); the partial epoch is validated and saved */
  maxSteps?: number;
  /** delete an existing run folder of the same id first */
  fresh?: boolean;
  /** evaluate the best checkpoint at the end (default true) */
  evaluate?: boolean;
  /** images per saliency subset in the final evaluation */
  auprImages?: number;
  egSamples?: number;
  /** run the generator for missing corpora (default true) */
  generate?: boolean;
  /** parallel image decodes */
  concurrency?: number;
  log?: (line: string) => void;
  /** progress bar on stderr: 'auto' = only when stderr is a TTY */
  progress?: 'auto' | 'off';
}

export interface RunConfig {
  runId: string;
  dataset: string;
  adapter: string;
  corporaRoot: string;
  seed: number;
  method: MethodSpec;
  cfLoss: CfLossKind;
  hyper: Hyper;
  preset: { name: string; source: string; warning: string | null };
  model: ModelConfig;
  classNames: string[];
  init: string | null;
  valSource: string;
  corpora: Record<string, { corpusId: string | null; originalsCovered: number; skipped: number; errors: number; variants: number }>;
  toolVersion: string;
}

export interface RunState {
  /** epochs finished */
  epoch: number;
  /** optimizer steps taken */
  step: number;
  lr: number;
  bestMetric: number;
  bestEpoch: number | null;
  epochsSinceBest: number;
  plateau: PlateauState | null;
  finished: boolean;
  stopReason: string | null;
  skippedSteps: number;
}

export interface StepContext {
  model: Model;
  optimizer: tf.Optimizer;
  method: MethodSpec;
  cfLoss: CfLossKind;
  numClasses: number;
  clipNorm: number;
  weightDecay: number;
}

/** Per-term sums over the images of one step (divide by `nImages` for the step's contribution). */
export interface StepStats {
  total: number;
  terms: { ce: number; cf: number; f: number; fgsm: number; sal: number };
  counts: { orig: number; cf: number; f: number; fgsm: number; sal: number };
  nImages: number;
  gradNorm: number;
  clipped: boolean;
  skipped: boolean;
}

function indicesWhere(n: number, pred: (i: number) => boolean): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (pred(i)) out.push(i);
  return Int32Array.from(out);
}

/**
 * The update every step ends with, whether its gradients came from one process or were summed across threads:
 * clip to the global norm, then add L2 weight decay (after clipping, as PyTorch's SGD/RMSProp/Adam weight_decay
 * does), then let the optimizer apply it. `grads` is keyed by variable name and is not disposed.
 */
export function applyClippedUpdate(ctx: StepContext, grads: tf.NamedTensorMap, gradNorm: number): void {
  const scale = gradNorm > ctx.clipNorm ? ctx.clipNorm / gradNorm : 1;
  const varByName = new Map(ctx.model.variables.map((v) => [v.name, v]));
  const update: tf.NamedTensorMap = {};
  for (const n of Object.keys(grads)) {
    update[n] = tf.tidy(() => {
      let g = scale === 1 ? grads[n].clone() : tf.mul(grads[n], scale);
      if (ctx.weightDecay > 0) g = tf.add(g, tf.mul(varByName.get(n)!, ctx.weightDecay));
      return g;
    });
  }
  ctx.optimizer.applyGradients(update);
  tf.dispose(Object.values(update));
}

/**
 * One optimizer step on an augmented batch. Exported for the benchmark and the memory test: it must leave
 * tf.memory().numTensors where it found it (after the optimizer's own state exists).
 */
export function trainStep(ctx: StepContext, batch: TrainBatch, stepSeed: number): StepStats {
  const { model, method, numClasses: K } = ctx;
  const S = batch.size;
  const nOrig = batch.nOrig;
  const cfIdx = indicesWhere(batch.n, (i) => batch.role[i] === ROLE.cf);
  const fIdx = indicesWhere(batch.n, (i) => batch.role[i] === ROLE.f);
  const usable = indicesWhere(nOrig, (i) => batch.maskUsable[i] === 1);
  const forward = (x: tf.Tensor4D): tf.Tensor2D => model.apply(x);
  const kept: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => { kept.push(tf.keep(t)); return t; };

  const x = keep(tf.tensor4d(batch.x, [batch.n, S, S, 3]));
  const labels = keep(tf.tensor1d(batch.labels, 'int32'));
  const xOrig = keep(x.slice([0, 0, 0, 0], [nOrig, S, S, 3]));
  const yOrig = keep(labels.slice([0], [nOrig]));
  const xRest = batch.n > nOrig ? keep(x.slice([nOrig, 0, 0, 0], [batch.n - nOrig, S, S, 3])) : null;
  const yRest = batch.n > nOrig ? keep(labels.slice([nOrig], [batch.n - nOrig])) : null;

  // Object masks of the originals that have both object and background: Sal and FGSM act on their background.
  let xMasked: tf.Tensor4D | null = null, yMasked: tf.Tensor1D | null = null, bgMasked: tf.Tensor4D | null = null;
  if ((method.sal || method.fgsm) && usable.length && batch.objMask) {
    const idx = keep(tf.tensor1d(usable, 'int32'));
    xMasked = keep(tf.gather(xOrig, idx));
    yMasked = keep(tf.gather(yOrig, idx));
    const obj = keep(tf.tensor4d(batch.objMask, [nOrig, S, S, 1]));
    bgMasked = keep(tf.tidy(() => tf.sub(1, tf.gather(obj, idx)) as tf.Tensor4D));
  }
  // FGSM images are made with the weights frozen: only the input gradient is taken, outside variableGrads.
  const xAdv = method.fgsm && xMasked && yMasked && bgMasked
    ? keep(fgsmBackground(forward, xMasked, yMasked, bgMasked, { epsilon: method.fgsm.epsilon, seed: stepSeed }))
    : null;
  let xOrigIn = xOrig;
  let targets: tf.Tensor2D | null = null;
  if (method.mixup) {
    const m = mixupBatch(xOrig, yOrig, K, method.mixup.alpha, stepSeed);
    xOrigIn = keep(m.x);
    targets = keep(method.ls ? tf.tidy(() => tf.add(tf.mul(m.targets, 1 - method.ls!.epsilon), method.ls!.epsilon / K) as tf.Tensor2D) : m.targets);
    if (method.ls) m.targets.dispose();
  }
  const nAdv = xAdv ? xAdv.shape[0] : 0;
  const nImages = batch.n + nAdv;
  const cfIdxT = cfIdx.length ? keep(tf.tensor1d(Int32Array.from(cfIdx, (i) => i - nOrig), 'int32')) : null;
  const fIdxT = fIdx.length ? keep(tf.tensor1d(Int32Array.from(fIdx, (i) => i - nOrig), 'int32')) : null;
  const rest = [xRest, xAdv].filter((t): t is tf.Tensor4D => t !== null);
  const xRestAll = rest.length ? keep(rest.length === 1 ? rest[0] : tf.concat(rest, 0)) : null;
  // With Sal (and no mixup) the originals' logits come from the saliency pass itself: one forward for them. Its
  // background is 0 for an original without a usable mask, whose penalty is then 0.
  const salFused = method.sal !== null && !method.mixup && batch.objMask !== null;
  const bgAllOrig = salFused
    ? keep(tf.tidy(() => tf.mul(tf.sub(1, tf.tensor4d(batch.objMask!, [nOrig, S, S, 1])), tf.tensor4d(Float32Array.from(batch.maskUsable), [nOrig, 1, 1, 1])) as tf.Tensor4D))
    : null;

  const termTensors: Record<keyof StepStats['terms'], tf.Scalar | null> = { ce: null, cf: null, f: null, fgsm: null, sal: null };
  const { value, grads } = tf.variableGrads(() => {
    let origLogits: tf.Tensor2D;
    let restLogits: tf.Tensor2D | null = null;
    let salSum: tf.Scalar | null = null;
    if (salFused) {
      const r = saliencyPenaltyAndLogits(forward, xOrig, yOrig, bgAllOrig!);
      origLogits = r.logits;
      salSum = tf.sum(r.penalty) as tf.Scalar;
      if (xRestAll) restLogits = forward(xRestAll);
    } else {
      const all = xRestAll ? forward(tf.concat([xOrigIn, xRestAll], 0) as tf.Tensor4D) : forward(xOrigIn);
      origLogits = xRestAll ? all.slice([0, 0], [nOrig, K]) : all;
      if (xRestAll) restLogits = all.slice([nOrig, 0], [xRestAll.shape[0], K]);
      if (method.sal && xMasked && yMasked && bgMasked) salSum = tf.sum(saliencyPenalty(forward, xMasked, yMasked, bgMasked)) as tf.Scalar;
    }
    const ce = tf.sum(targets ? softCrossEntropy(origLogits, targets) : crossEntropy(origLogits, yOrig as tf.Tensor1D, method.ls?.epsilon ?? 0)) as tf.Scalar;
    termTensors.ce = tf.keep(ce);
    let total: tf.Scalar = ce;
    if (restLogits && cfIdxT) {
      termTensors.cf = tf.keep(tf.sum(counterfactualLoss(tf.gather(restLogits, cfIdxT) as tf.Tensor2D, tf.gather(yRest!, cfIdxT) as tf.Tensor1D, ctx.cfLoss)) as tf.Scalar);
      total = tf.add(total, termTensors.cf) as tf.Scalar;
    }
    if (restLogits && fIdxT) {
      termTensors.f = tf.keep(tf.sum(crossEntropy(tf.gather(restLogits, fIdxT) as tf.Tensor2D, tf.gather(yRest!, fIdxT) as tf.Tensor1D)) as tf.Scalar);
      total = tf.add(total, termTensors.f) as tf.Scalar;
    }
    if (restLogits && xAdv) {
      const advLogits = restLogits.slice([batch.n - nOrig, 0], [nAdv, K]);
      termTensors.fgsm = tf.keep(tf.sum(crossEntropy(advLogits, yMasked!)) as tf.Scalar);
      total = tf.add(total, termTensors.fgsm) as tf.Scalar;
    }
    if (salSum && method.sal) {
      termTensors.sal = tf.keep(tf.mul(salSum, method.sal.lambda) as tf.Scalar);
      total = tf.add(total, termTensors.sal) as tf.Scalar;
    }
    return tf.div(total, nImages) as tf.Scalar;
  }, model.variables);

  const names = Object.keys(grads);
  const normT = tf.tidy(() => tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n]))))));
  const gradNorm = normT.dataSync()[0];
  normT.dispose();
  const total = value.dataSync()[0];
  value.dispose();
  const skipped = !Number.isFinite(gradNorm) || !Number.isFinite(total);
  const clipped = gradNorm > ctx.clipNorm;
  if (!skipped) applyClippedUpdate(ctx, grads, gradNorm);
  tf.dispose(Object.values(grads));
  const read = (t: tf.Scalar | null): number => (t ? t.dataSync()[0] : 0);
  const stats: StepStats = {
    total,
    terms: { ce: read(termTensors.ce), cf: read(termTensors.cf), f: read(termTensors.f), fgsm: read(termTensors.fgsm), sal: read(termTensors.sal) },
    counts: { orig: nOrig, cf: cfIdx.length, f: fIdx.length, fgsm: nAdv, sal: method.sal ? usable.length : 0 },
    nImages, gradNorm, clipped, skipped,
  };
  tf.dispose(Object.values(termTensors).filter((t): t is tf.Scalar => t !== null));
  tf.dispose(kept);
  return stats;
}

export function makeOptimizer(h: Pick<Hyper, 'optimizer' | 'lr' | 'momentum'>): tf.Optimizer {
  switch (h.optimizer) {
    case 'sgd': return h.momentum > 0 ? tf.train.momentum(h.lr, h.momentum) : tf.train.sgd(h.lr);
    // PyTorch's RMSprop defaults (alpha 0.99, eps 1e-8); the paper trained with PyTorch.
    case 'rmsprop': return tf.train.rmsprop(h.lr, 0.99, h.momentum, 1e-8);
    case 'adam': return tf.train.adam(h.lr, h.momentum, 0.999, 1e-8);
  }
}

export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const o = opt as unknown as { setLearningRate?: (lr: number) => void; learningRate: number };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** Optimizer state as `optimizer.json` (names, shapes, dtypes) + `optimizer.bin` (the values, in order). */
export async function saveOptimizerState(opt: tf.Optimizer, dir: string): Promise<void> {
  const weights = await opt.getWeights();
  const meta = [];
  const parts: Uint8Array[] = [];
  for (const w of weights) {
    const data = await w.tensor.data();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    meta.push({ name: w.name, shape: w.tensor.shape, dtype: w.tensor.dtype, bytes: bytes.byteLength });
    parts.push(bytes);
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const blob = new Uint8Array(total);
  let o = 0;
  for (const p of parts) { blob.set(p, o); o += p.length; }
  await writeFileAtomic(join(dir, 'optimizer.bin'), blob);
  await writeJsonAtomic(join(dir, 'optimizer.json'), { weights: meta });
}

export async function loadOptimizerState(opt: tf.Optimizer, dir: string): Promise<boolean> {
  let meta: { weights: { name: string; shape: number[]; dtype: 'float32' | 'int32'; bytes: number }[] };
  let blob: Buffer;
  try {
    meta = JSON.parse(await readFile(join(dir, 'optimizer.json'), 'utf8'));
    blob = await readFile(join(dir, 'optimizer.bin'));
  } catch {
    return false;
  }
  let o = 0;
  const named = meta.weights.map((w) => {
    const bytes = new Uint8Array(blob.buffer, blob.byteOffset + o, w.bytes).slice();
    o += w.bytes;
    const values = w.dtype === 'int32' ? new Int32Array(bytes.buffer) : new Float32Array(bytes.buffer);
    return { name: w.name, tensor: tf.tensor(values, w.shape, w.dtype) };
  });
  await opt.setWeights(named);
  tf.dispose(named.map((n) => n.tensor));
  return true;
}

/** Resolve preset + overrides into the run's hyperparameters. */
export function resolveHyper(preset: TrainPreset, o: TrainOptions): Hyper {
  const { name: _n, source: _s, warning: _w, ...base } = preset;
  const h: Hyper = { ...base, schedule: structuredClone(base.schedule) };
  if (o.epochs !== undefined) h.epochs = o.epochs;
  if (o.batch !== undefined) h.batch = o.batch;
  if (o.lr !== undefined) h.lr = o.lr;
  if (o.optimizer !== undefined) h.optimizer = o.optimizer;
  if (o.momentum !== undefined) h.momentum = o.momentum;
  if (o.weightDecay !== undefined) h.weightDecay = o.weightDecay;
  if (o.schedule !== undefined) h.schedule = o.schedule;
  if (o.model !== undefined) h.model = o.model;
  if (o.size !== undefined) h.size = o.size;
  if (o.patience !== undefined) h.patience = o.patience;
  if (o.valMetric !== undefined) h.valMetric = o.valMetric;
  if (o.clipNorm !== undefined) h.clipNorm = o.clipNorm;
  const bad = (what: string) => { throw new UserError(`bad training option: ${what}`, { fix: 'see `cfgen train --help`' }); };
  if (!(Number.isInteger(h.epochs) && h.epochs >= 1)) bad(`--epochs must be a positive integer (got ${h.epochs})`);
  if (!(Number.isInteger(h.batch) && h.batch >= 1)) bad(`--batch must be a positive integer (got ${h.batch})`);
  if (!(h.lr > 0)) bad(`--lr must be > 0 (got ${h.lr})`);
  if (!(Number.isInteger(h.size) && h.size >= 8)) bad(`--size must be an integer ≥ 8 (got ${h.size})`);
  if (!(h.clipNorm > 0)) bad(`--clip-norm must be > 0 (got ${h.clipNorm})`);
  if (!(h.momentum >= 0 && h.momentum < 1)) bad(`--momentum must be in [0, 1) (got ${h.momentum})`);
  if (!(h.weightDecay >= 0)) bad(`--weight-decay must be ≥ 0 (got ${h.weightDecay})`);
  return h;
}

/** The fields that make two runs the same run (a rerun with the same ones resumes; --epochs may grow). */
function identityOf(c: RunConfig): string {
  const { epochs: _e, ...hyper } = c.hyper;
  return stableStringify({ dataset: c.dataset, seed: c.seed, method: c.method.canonical, cfLoss: c.cfLoss, hyper, model: c.model, init: c.init });
}

function diffFields(a: RunConfig, b: RunConfig): string[] {
  const flat = (c: RunConfig): Record<string, string> => {
    const { epochs: _e, ...hyper } = c.hyper;
    const o: Record<string, string> = { dataset: c.dataset, seed: String(c.seed), method: c.method.canonical, 'cf-loss': c.cfLoss, init: String(c.init) };
    for (const [k, v] of Object.entries(hyper)) o[k] = stableStringify(v);
    return o;
  };
  const fa = flat(a), fb = flat(b);
  return Object.keys(fa).filter((k) => fa[k] !== fb[k]).map((k) => `${k}: ${fa[k]} → ${fb[k]}`);
}

/** Generate the corpora a method needs but the disk lacks: run the generator, or say exactly what to run. */
export async function ensureCorpora(corporaRoot: string, dataset: string, folders: readonly string[], opts: { generate: boolean; log: (l: string) => void }): Promise<void> {
  const missing = await missingCorpora(corporaRoot, dataset, folders);
  if (!missing.length) return;
  const custom = resolve(corporaRoot) !== resolve(REPO_ROOT, 'corpora');
  const cmd = `make generate DATASET=${dataset} METHODS=${missing.join(',')}`
    + (custom ? ` (or: npx tsx cfgen.ts generate --dataset ${dataset} --methods ${missing.join(',')} --corpora-root ${corporaRoot})` : '');
  const cli = join(REPO_ROOT, 'cfgen.ts');
  if (!opts.generate || !existsSync(cli)) {
    throw new UserError(`corpora missing for dataset "${dataset}": ${missing.join(', ')}`, { file: join(corporaRoot, dataset), fix: `generate them first: ${cmd}` });
  }
  // With a source manifest already there, generate from it (any dataset name works, corpora go beside it);
  // otherwise let the generator build or ingest the dataset first.
  const src = sourceDir(corporaRoot, dataset);
  const args = existsSync(src)
    ? ['tsx', 'cfgen.ts', 'generate', '--source', src, '--methods', missing.join(','), '--quiet']
    : ['tsx', 'cfgen.ts', 'generate', '--dataset', dataset, '--methods', missing.join(','), '--corpora-root', corporaRoot];
  opts.log(`corpora missing (${missing.join(', ')}): running npx ${args.join(' ')}`);
  const code = await new Promise<number>((res, rej) => {
    const child = spawn('npx', args, { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', rej);
    child.on('exit', (c) => res(c ?? 1));
  });
  const still = await missingCorpora(corporaRoot, dataset, folders);
  if (code !== 0 || still.length) {
    throw new UserError(`generating the corpora ${missing.join(', ')} failed (exit ${code})`, { file: join(corporaRoot, dataset), fix: `run it by hand to see why: ${cmd}` });
  }
}

class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private lastLine = 0;
  constructor(private readonly enabled: boolean, private readonly log: (l: string) => void) {}
  start(total: number, label: string): void {
    this.lastLine = Date.now();
    if (this.enabled) {
      this.bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {value}/{total} steps | {ips} img/s | loss {loss} | ETA {eta_formatted}`, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
      this.bar.start(total, 0, { ips: '-', loss: '-' });
    }
  }
  update(done: number, total: number, label: string, ips: number, loss: number): void {
    if (this.bar) { this.bar.update(done, { ips: ips.toFixed(0), loss: loss.toFixed(4) }); return; }
    if (Date.now() - this.lastLine > 5000) {
      this.lastLine = Date.now();
      this.log(`${label}: step ${done}/${total}, ${ips.toFixed(0)} img/s, loss ${loss.toFixed(4)}`);
    }
  }
  stop(): void { this.bar?.stop(); this.bar = null; }
}

export interface TrainResult {
  runDir: string;
  config: RunConfig;
  state: RunState;
  eval: EvalReport | null;
}

/** Train (or resume) a run, then evaluate its best checkpoint. */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const method = parseMethod(o.method);
  const seed = o.seed ?? 0;
  const corporaRoot = resolve(o.corporaRoot ?? join(REPO_ROOT, 'corpora'));
  const runsRoot = resolve(o.runsRoot ?? join(REPO_ROOT, 'runs'));
  const runId = o.runId ?? `${o.dataset}-${methodSlug(method)}-s${seed}`;
  if (!/^[A-Za-z0-9._@+-]+$/.test(runId)) throw new UserError(`bad --run-id "${runId}"`, { fix: 'use letters, digits and . _ - + @ only' });
  const runDir = join(runsRoot, runId);
  if (o.fresh) await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  const logFile = join(runDir, 'train.log');
  const log = (line: string): void => {
    (o.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
    void appendFile(logFile, `${new Date().toISOString()} ${line}\n`).catch(() => undefined);
  };

  const backend = await initBackend({ backend: o.backend ?? 'auto', threads: o.threads });
  log(`backend ${backend.name} (${backend.reason})`);

  await ensureCorpora(corporaRoot, o.dataset, method.corpora, { generate: o.generate ?? true, log });
  const index = await loadDatasetIndex({ corporaRoot, dataset: o.dataset, terms: [...method.cf, ...method.f] });
  const preset = presetFor(o.dataset, index.adapter);
  const hyper = resolveHyper(preset, o);
  const numClasses = index.classNames.length;
  const modelConfig = presetConfig(hyper.model, numClasses);
  const corpora: RunConfig['corpora'] = {};
  for (const t of index.terms) corpora[t.folder] = { corpusId: index.corpusIds[t.folder] ?? null, ...index.corpusStats[t.folder] };
  const config: RunConfig = {
    runId, dataset: o.dataset, adapter: index.adapter, corporaRoot, seed, method, cfLoss: o.cfLoss ?? 'logp', hyper,
    preset: { name: preset.name, source: preset.source, warning: preset.warning }, model: modelConfig, classNames: index.classNames,
    init: o.init ? resolve(o.init) : null, valSource: index.valSource, corpora, toolVersion: TOOL_VERSION,
  };

  let state: RunState | null = null;
  const configPath = join(runDir, 'config.json');
  if (existsSync(configPath)) {
    const old = JSON.parse(await readFile(configPath, 'utf8')) as RunConfig;
    if (identityOf(old) !== identityOf(config)) {
      throw new UserError(`run "${runId}" already exists with other settings (${diffFields(old, config).join('; ')})`, {
        file: runDir, fix: 'pass --run-id <new id> for a new run, or --fresh to delete this one and start over',
      });
    }
    try { state = JSON.parse(await readFile(join(runDir, 'state.json'), 'utf8')) as RunState; } catch { state = null; }
  }
  await writeJsonAtomic(configPath, config);

  if (preset.warning) for (let i = 0; i < 2; i++) log(`!!! ${preset.warning} !!!`);
  if (index.adapter === 'waterbirds' && !o.dataset.startsWith('synth-') && !config.init) {
    log('!!! WATERBIRDS IN THE PAPER IS FINE-TUNED FROM PRETRAINED BiT-S R50x1 (lr 8e-4); WITHOUT --init THIS TRAINS FROM SCRATCH AND WILL UNDERPERFORM !!!');
  }
  log(`run ${runId}: ${o.dataset} (${index.adapter}), method ${method.canonical}, cf-loss ${config.cfLoss}, seed ${seed}`);
  log(`preset ${preset.name} (${preset.source}): model ${hyper.model} @ ${hyper.size} px, ${hyper.optimizer} lr ${hyper.lr} momentum ${hyper.momentum} wd ${hyper.weightDecay}, schedule ${scheduleToString(hyper.schedule)}, ${hyper.epochs} epochs, batch ${hyper.batch}, clip ${hyper.clipNorm}, early stopping ${hyper.patience || 'off'} on val ${hyper.valMetric}`);
  log(`data: ${index.train.length} train originals, ${index.val.length} val (${index.valSource}), test ${[...index.test].map(([s, r]) => `${s} ${r.length}`).join(', ') || 'none'}`);
  for (const [f, s] of Object.entries(index.corpusStats)) log(`corpus ${f}: ${s.originalsCovered}/${index.train.length} originals covered, ${s.variants} variant(s), ${s.skipped} skipped, ${s.errors} error rows`);

  const model = createModel(modelConfig, seed);
  const optimizer = makeOptimizer(hyper);
  // Not part of the run identity: it changes float rounding (and FGSM/mixup draws per shard), not the experiment.
  const parallel = await startParallelStep({ threads: o.workers ?? 1, model: modelConfig, backend: backend.name as BackendChoice, log });
  if (parallel.threads > 1) log(`data-parallel steps: ${parallel.threads} threads (this one + ${parallel.threads - 1} workers)`);
  try {
    if (state) {
      await loadWeightsInto(model, join(runDir, 'last'), { strict: true });
      const had = await loadOptimizerState(optimizer, join(runDir, 'last'));
      log(`resuming after epoch ${state.epoch} (step ${state.step}, best ${state.bestEpoch === null ? 'none' : `epoch ${state.bestEpoch}: ${state.bestMetric.toFixed(4)}`})${had ? '' : ', optimizer state not found: starting it fresh'}`);
      // More epochs than last time, or a smoke run's step cap lifted: continue after the last finished epoch.
      const moreEpochs = state.stopReason === 'epochs' && state.epoch < hyper.epochs;
      const capLifted = state.stopReason?.startsWith('max-steps') === true && (o.maxSteps === undefined || o.maxSteps > state.step) && state.epoch < hyper.epochs;
      if (state.finished && (moreEpochs || capLifted)) { state.finished = false; state.stopReason = null; }
    } else if (config.init) {
      const rep = await loadWeightsInto(model, config.init, { strict: false });
      log(`initialised from ${config.init}: ${rep.loaded.length}/${model.paramNames.length} parameters loaded`
        + (rep.missing.length + rep.mismatched.length + rep.unused.length ? `; not loaded:\n${describeReport(rep)}` : ''));
    }
    state ??= {
      epoch: 0, step: 0, lr: hyper.lr, bestMetric: -Infinity, bestEpoch: null, epochsSinceBest: 0,
      plateau: hyper.schedule.kind === 'plateau' ? { best: -Infinity, bad: 0, lr: hyper.lr } : null,
      finished: false, stopReason: null, skippedSteps: 0,
    };
    const metricsPath = join(runDir, 'metrics.jsonl');
    let metricsLines: string[] = [];
    try { metricsLines = (await readFile(metricsPath, 'utf8')).split('\n').filter((l) => l.trim() && (JSON.parse(l) as { epoch: number }).epoch <= state!.epoch); } catch { /* first epoch */ }

    const ctx: StepContext = { model, optimizer, method, cfLoss: config.cfLoss, numClasses, clipNorm: hyper.clipNorm, weightDecay: hyper.weightDecay };
    const withMasks = method.sal !== null || method.fgsm !== null;
    const progress = new Progress((o.progress ?? 'auto') === 'auto' && process.stderr.isTTY === true, log);
    const valCache: { x: Float32Array; n: number }[] = [];
    const steps = stepsPerEpoch(index.train.length, hyper.batch);

    while (!state.finished) {
      const epoch = state.epoch; // 0-based index of the epoch about to run
      const lr = hyper.schedule.kind === 'plateau' ? state.plateau!.lr : scheduledLr(hyper.lr, hyper.schedule, epoch, hyper.epochs);
      setLearningRate(optimizer, lr);
      const label = `epoch ${epoch + 1}/${hyper.epochs}`;
      const sums = { total: 0, ce: 0, cf: 0, f: 0, fgsm: 0, sal: 0, images: 0, orig: 0, cfN: 0, fN: 0, fgsmN: 0, salN: 0, gradNorm: 0, clipped: 0, skipped: 0, steps: 0 };
      const t0 = Date.now();
      let computeMs = 0;
      progress.start(steps, label);
      let stoppedBySteps = false;
      for await (const batch of trainBatches(index, epoch, { batchSize: hyper.batch, size: hyper.size, seed, withMasks, concurrency: o.concurrency })) {
        const ts = Date.now();
        const stepSeed = rngFor(seed, 'step', epoch, sums.steps).int(2 ** 31);
        const st = parallel.threads > 1 ? await parallel.step(ctx, batch, stepSeed) : trainStep(ctx, batch, stepSeed);
        computeMs += Date.now() - ts;
        sums.steps++;
        state.step++;
        sums.total += st.total * st.nImages;
        sums.ce += st.terms.ce; sums.cf += st.terms.cf; sums.f += st.terms.f; sums.fgsm += st.terms.fgsm; sums.sal += st.terms.sal;
        sums.images += st.nImages; sums.orig += st.counts.orig; sums.cfN += st.counts.cf; sums.fN += st.counts.f; sums.fgsmN += st.counts.fgsm; sums.salN += st.counts.sal;
        sums.gradNorm += st.skipped ? 0 : st.gradNorm;
        if (st.clipped) sums.clipped++;
        if (st.skipped) { sums.skipped++; state.skippedSteps++; log(`step ${state.step}: non-finite loss or gradient, step skipped`); }
        progress.update(sums.steps, steps, label, sums.images / ((Date.now() - t0) / 1000), sums.total / sums.images);
        if (o.maxSteps !== undefined && state.step >= o.maxSteps) { stoppedBySteps = true; break; }
      }
      progress.stop();
      const trainSec = (Date.now() - t0) / 1000;

      const v0 = Date.now();
      if (!valCache.length) {
        for await (const b of evalBatches(index.root, index.val, { size: hyper.size, batchSize: EVAL_DEFAULTS.batchSize, concurrency: o.concurrency })) valCache.push({ x: b.x, n: b.n });
      }
      const valLogits = new Float32Array(index.val.length * numClasses);
      let at = 0;
      for (const b of valCache) {
        const l = tf.tidy(() => model.apply(tf.tensor4d(b.x, [b.n, hyper.size, hyper.size, 3])));
        valLogits.set(l.dataSync() as Float32Array, at * numClasses);
        l.dispose();
        at += b.n;
      }
      const val: ValResult = validationResult(valLogits, index.val, numClasses, hyper.valMetric);
      const valSec = (Date.now() - v0) / 1000;

      state.epoch = epoch + 1;
      const improved = val.metric > state.bestMetric || state.bestEpoch === null;
      if (improved) { state.bestMetric = val.metric; state.bestEpoch = state.epoch; state.epochsSinceBest = 0; }
      else state.epochsSinceBest++;
      if (state.plateau && hyper.schedule.kind === 'plateau') state.plateau = plateauStep(state.plateau, val.metric, hyper.schedule);
      state.lr = lr;
      if (stoppedBySteps) { state.finished = true; state.stopReason = `max-steps ${o.maxSteps}`; }
      else if (state.epoch >= hyper.epochs) { state.finished = true; state.stopReason = 'epochs'; }
      else if (hyper.patience > 0 && state.epochsSinceBest >= hyper.patience) { state.finished = true; state.stopReason = `early stopping: no better val ${hyper.valMetric} for ${hyper.patience} epochs`; }

      const per = (s: number, n: number): number | null => (n ? s / n : null);
      const line = {
        epoch: state.epoch, step: state.step, lr, backend: backend.name, workers: parallel.threads,
        train: {
          loss: per(sums.total, sums.images), ce: per(sums.ce, sums.orig), cf: per(sums.cf, sums.cfN), f: per(sums.f, sums.fN),
          fgsm: per(sums.fgsm, sums.fgsmN), sal: per(sums.sal, sums.salN),
          images: sums.images, originals: sums.orig, cf_images: sums.cfN, f_images: sums.fN, fgsm_images: sums.fgsmN,
          grad_norm: per(sums.gradNorm, sums.steps - sums.skipped), clipped_steps: sums.clipped, skipped_steps: sums.skipped, steps: sums.steps,
        },
        val: { metric: val.metric, metric_name: val.metricName, acc: val.acc, worst_group: val.worstGroup, auc: Number.isNaN(val.auc) ? null : val.auc, loss: val.loss, n: val.n },
        best: improved,
        images_per_s: sums.images / trainSec,
        compute_images_per_s: computeMs ? sums.images / (computeMs / 1000) : null,
        seconds: { train: trainSec, val: valSec },
        time: new Date().toISOString(),
      };
      log(`${label}: loss ${line.train.loss?.toFixed(4)} (ce ${line.train.ce?.toFixed(4)}${line.train.cf !== null ? `, cf ${line.train.cf.toFixed(4)}` : ''}${line.train.f !== null ? `, f ${line.train.f.toFixed(4)}` : ''}${line.train.fgsm !== null ? `, fgsm ${line.train.fgsm.toFixed(4)}` : ''}${line.train.sal !== null ? `, sal ${line.train.sal.toFixed(5)}` : ''}), val ${hyper.valMetric} ${(100 * val.metric).toFixed(1)}%${improved ? ' *best*' : ''}, lr ${lr.toPrecision(3)}, ${line.images_per_s.toFixed(0)} img/s, ${trainSec.toFixed(0)} s${state.finished ? ` — stop: ${state.stopReason}` : ''}`);

      // Commit order: checkpoints first, state.json last, so a crash resumes from a consistent epoch.
      await saveModel(model, join(runDir, 'last'));
      await saveOptimizerState(optimizer, join(runDir, 'last'));
      if (improved) await saveModel(model, join(runDir, 'best'));
      metricsLines.push(JSON.stringify(line));
      await writeFileAtomic(metricsPath, metricsLines.join('\n') + '\n');
      await writeJsonAtomic(join(runDir, 'state.json'), state);
    }
    log(`training done: ${state.stopReason}; best val ${hyper.valMetric} ${(100 * state.bestMetric).toFixed(1)}% at epoch ${state.bestEpoch}`);
  } finally {
    await parallel.close();
    model.dispose();
    optimizer.dispose();
  }

  let report: EvalReport | null = null;
  if (o.evaluate ?? true) {
    log('evaluating the best-validation checkpoint');
    report = await evaluateRun(runDir, {
      corporaRoot, loadModel, log, auprImages: o.auprImages, egSamples: o.egSamples, concurrency: o.concurrency,
    });
    log(formatEvalTable(report));
  }
  return { runDir, config, state, eval: report };
}
