import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { resolveRoot } from '../common/paths.ts';
import { UserError } from '../manifests/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../manifests/io.ts';
import { rngFor } from '../manifests/rng.ts';
import { TOOL_VERSION } from '../manifests/version.ts';
import { initBackend, type BackendChoice } from './backend.ts';
import { describeReport, loadModel, loadWeightsInto, saveModel } from './checkpoint.ts';
import { checkCorpora, generateCorpora } from './corpora-check.ts';
import { evalBatches, loadDatasetIndex, stepsPerEpoch, trainBatches, type DatasetIndex } from './data.ts';
import { EpochSums, epochLogLine, epochRecord } from './epoch-record.ts';
import { EVAL_DEFAULTS } from './eval-defaults.ts';
import { evaluateRun, formatEvalTable, validationResult, type EvalReport, type ValResult } from './evaluate.ts';
import { methodSlug, parseMethod, type CfLossKind } from './method.ts';
import { createModel, presetConfig, type Model, type PresetName } from './model.ts';
import { loadOptimizerState, makeOptimizer, saveOptimizerState, setLearningRate } from './optimizer-state.ts';
import { startParallelStep } from './parallel.ts';
import { plateauStep, presetFor, scheduledLr, scheduleToString, type OptimizerName, type Schedule, type TrainPreset, type ValMetric } from './presets.ts';
import { Progress, RunLog } from './progress.ts';
import {
  diffFields, identityOf, initialState, readMetricsHistory, readRunConfig, readRunState, resolveHyper, type Hyper, type RunConfig, type RunState,
} from './run-state.ts';
import { trainStep, type StepContext } from './step.ts';

/**
 * The training loop (DESIGN §5): epochs of `trainStep` (step.ts) over the augmented batches, a validation pass
 * after each, checkpoints and state written after each, then an evaluation of the best checkpoint. A run lives in
 * `runs/<run-id>/`; rerunning the same command resumes it from the last finished epoch.
 */

/** What `cfgen train` passes; everything but method and dataset has a default (the preset's, for hyperparameters). */
export interface TrainOptions {
  method: string;
  dataset: string;
  seed?: number;
  /** default: resolveRoot('corpora') (CFGEN_CORPORA_ROOT, else <project>/corpora) */
  corporaRoot?: string;
  /** default: resolveRoot('runs') (CFGEN_RUNS_ROOT, else <project>/runs) */
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

/** What a run left: its folder, config and final state, and the evaluation (null with `evaluate: false`). */
export interface TrainResult {
  runDir: string;
  config: RunConfig;
  state: RunState;
  eval: EvalReport | null;
  /** `<runDir>/eval.json` when the run was evaluated */
  evalPath: string | null;
}

/** A run that passed every check: its config and, when it resumes, its state and metric history. */
interface CheckedRun {
  runDir: string;
  config: RunConfig;
  index: DatasetIndex;
  preset: TrainPreset;
  state: RunState | null;
  metricsLines: string[];
}

const RUN_ID = /^[A-Za-z0-9._@+-]+$/;

/**
 * Everything a run can fail on before anything is created: the METHOD, the run id, the options, the corpora (made
 * here when missing), the dataset, and an existing run folder's records. Nothing is written to the run folder.
 */
async function checkRun(o: TrainOptions, log: (l: string) => void): Promise<CheckedRun> {
  const method = parseMethod(o.method);
  const seed = o.seed ?? 0;
  const runId = o.runId ?? `${o.dataset}-${methodSlug(method)}-s${seed}`;
  if (!RUN_ID.test(runId)) throw new UserError(`bad --run-id "${runId}"`, { fix: 'use letters, digits and . _ - + @ only' });
  const corporaRoot = resolveRoot('corpora', o.corporaRoot);
  const runDir = join(resolveRoot('runs', o.runsRoot), runId);
  // The overrides alone, against any preset (its own values are valid): a bad flag fails before minutes of generation.
  resolveHyper(presetFor(o.dataset, 'folder'), o);
  const missing = await checkCorpora(corporaRoot, o.dataset, method.corpora, { generate: o.generate ?? true });
  await generateCorpora(corporaRoot, o.dataset, missing, log);
  const index = await loadDatasetIndex({ corporaRoot, dataset: o.dataset, terms: [...method.cf, ...method.f] });
  const preset = presetFor(o.dataset, index.adapter);
  const hyper = resolveHyper(preset, o);
  const corpora: RunConfig['corpora'] = {};
  for (const t of index.terms) corpora[t.folder] = { corpusId: index.corpusIds[t.folder] ?? null, ...index.corpusStats[t.folder] };
  const config: RunConfig = {
    runId, dataset: o.dataset, adapter: index.adapter, corporaRoot, seed, method, cfLoss: o.cfLoss ?? 'logp', hyper,
    preset: { name: preset.name, source: preset.source, warning: preset.warning }, model: presetConfig(hyper.model, index.classNames.length),
    classNames: index.classNames, init: o.init ? resolve(o.init) : null, valSource: index.valSource, corpora, toolVersion: TOOL_VERSION,
  };
  if (o.fresh || !existsSync(join(runDir, 'config.json'))) return { runDir, config, index, preset, state: null, metricsLines: [] };

  const old = await readRunConfig(runDir, 'pass --fresh to delete this run and start over, or --run-id <new id> for a new run');
  if (identityOf(old) !== identityOf(config)) {
    throw new UserError(`run "${runId}" already exists with other settings (${diffFields(old, config).join('; ')})`, {
      file: runDir, fix: 'pass --run-id <new id> for a new run, or --fresh to delete this one and start over',
    });
  }
  const state = await readRunState(runDir);
  return { runDir, config, index, preset, state, metricsLines: state ? await readMetricsHistory(runDir, state.epoch) : [] };
}

/** The run's opening lines: the preset's warnings in capitals, then what is trained on what. */
function logRunHeader(log: (l: string) => void, o: TrainOptions, { config, index, preset }: CheckedRun): void {
  const hyper = config.hyper;
  if (preset.warning) for (let i = 0; i < 2; i++) log(`!!! ${preset.warning} !!!`);
  if (index.adapter === 'waterbirds' && !o.dataset.startsWith('synth-') && !config.init) {
    log('!!! WATERBIRDS IN THE PAPER IS FINE-TUNED FROM PRETRAINED BiT-S R50x1 (lr 8e-4); WITHOUT --init THIS TRAINS FROM SCRATCH AND WILL UNDERPERFORM !!!');
  }
  log(`run ${config.runId}: ${o.dataset} (${index.adapter}), method ${config.method.canonical}, cf-loss ${config.cfLoss}, seed ${config.seed}`);
  log(`preset ${preset.name} (${preset.source}): model ${hyper.model} @ ${hyper.size} px, ${hyper.optimizer} lr ${hyper.lr} momentum ${hyper.momentum} wd ${hyper.weightDecay}, schedule ${scheduleToString(hyper.schedule)}, ${hyper.epochs} epochs, batch ${hyper.batch}, clip ${hyper.clipNorm}, early stopping ${hyper.patience || 'off'} on val ${hyper.valMetric}`);
  log(`data: ${index.train.length} train originals, ${index.val.length} val (${index.valSource}), test ${[...index.test].map(([s, r]) => `${s} ${r.length}`).join(', ') || 'none'}`);
  for (const [f, s] of Object.entries(index.corpusStats)) log(`corpus ${f}: ${s.originalsCovered}/${index.train.length} originals covered, ${s.variants} variant(s), ${s.skipped} skipped, ${s.errors} error rows`);
}

/** The validation pass: logits of every val image (decoded once per run, into `cache`), then the metric. */
async function validate(model: Model, index: DatasetIndex, hyper: Hyper, cache: { x: Float32Array; n: number }[], concurrency?: number): Promise<ValResult> {
  const k = model.config.numClasses;
  if (!cache.length) {
    for await (const b of evalBatches(index.root, index.val, { size: hyper.size, batchSize: EVAL_DEFAULTS.batchSize, concurrency })) cache.push({ x: b.x, n: b.n });
  }
  const logits = new Float32Array(index.val.length * k);
  let at = 0;
  for (const b of cache) {
    const l = tf.tidy(() => model.apply(tf.tensor4d(b.x, [b.n, hyper.size, hyper.size, 3])));
    logits.set(l.dataSync() as Float32Array, at * k);
    l.dispose();
    at += b.n;
  }
  return validationResult(logits, index.val, k, hyper.valMetric);
}

/** After an epoch: best-so-far, the plateau schedule and whether (and why) the run stops now. */
function advanceState(state: RunState, hyper: Hyper, val: ValResult, lr: number, stoppedBySteps: boolean, maxSteps?: number): boolean {
  const improved = val.metric > state.bestMetric || state.bestEpoch === null;
  if (improved) { state.bestMetric = val.metric; state.bestEpoch = state.epoch; state.epochsSinceBest = 0; }
  else state.epochsSinceBest++;
  if (state.plateau && hyper.schedule.kind === 'plateau') state.plateau = plateauStep(state.plateau, val.metric, hyper.schedule);
  state.lr = lr;
  if (stoppedBySteps) { state.finished = true; state.stopReason = `max-steps ${maxSteps}`; }
  else if (state.epoch >= hyper.epochs) { state.finished = true; state.stopReason = 'epochs'; }
  else if (hyper.patience > 0 && state.epochsSinceBest >= hyper.patience) { state.finished = true; state.stopReason = `early stopping: no better val ${hyper.valMetric} for ${hyper.patience} epochs`; }
  return improved;
}

/** Train (or resume) a run, then evaluate its best checkpoint. */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const runLog = new RunLog(o.log);
  const log = runLog.line;
  try {
    return await trainChecked(o, await checkRun(o, log), runLog);
  } finally {
    await runLog.flush();
  }
}

async function trainChecked(o: TrainOptions, run: CheckedRun, runLog: RunLog): Promise<TrainResult> {
  const log = runLog.line;
  const { runDir, config, index } = run;
  const { hyper, method, seed } = config;
  // Only now, with every check passed, does the run folder come into being (or, with --fresh, go first).
  if (o.fresh) await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  runLog.attach(runDir);
  await writeJsonAtomic(join(runDir, 'config.json'), config);

  const backend = await initBackend({ backend: o.backend ?? 'auto', threads: o.threads });
  log(`backend ${backend.name} (${backend.reason})`);
  logRunHeader(log, o, run);

  const numClasses = index.classNames.length;
  const model = createModel(config.model, seed);
  const optimizer = makeOptimizer(hyper);
  // Not part of the run identity: it changes float rounding (and FGSM/mixup draws per shard), not the experiment.
  const parallel = await startParallelStep({ threads: o.workers ?? 1, model: config.model, backend: backend.name as BackendChoice, log });
  if (parallel.threads > 1) log(`data-parallel steps: ${parallel.threads} threads (this one + ${parallel.threads - 1} workers)`);
  let state = run.state;
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
    state ??= initialState(hyper);
    const metricsPath = join(runDir, 'metrics.jsonl');
    const metricsLines = run.metricsLines;

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
      const sums = new EpochSums();
      const t0 = Date.now();
      let computeMs = 0;
      progress.start(steps, label);
      let stoppedBySteps = false;
      for await (const batch of trainBatches(index, epoch, { batchSize: hyper.batch, size: hyper.size, seed, withMasks, concurrency: o.concurrency })) {
        const ts = Date.now();
        const stepSeed = rngFor(seed, 'step', epoch, sums.steps).int(2 ** 31);
        const st = parallel.threads > 1 ? await parallel.step(ctx, batch, stepSeed) : trainStep(ctx, batch, stepSeed);
        computeMs += Date.now() - ts;
        sums.add(st);
        state.step++;
        if (st.skipped) { state.skippedSteps++; log(`step ${state.step}: non-finite loss or gradient, step skipped`); }
        progress.update(sums.steps, steps, label, sums.images / ((Date.now() - t0) / 1000), sums.total / sums.images);
        if (o.maxSteps !== undefined && state.step >= o.maxSteps) { stoppedBySteps = true; break; }
      }
      progress.stop();
      const trainSec = (Date.now() - t0) / 1000;

      const v0 = Date.now();
      const val = await validate(model, index, hyper, valCache, o.concurrency);
      const valSec = (Date.now() - v0) / 1000;
      state.epoch = epoch + 1;
      const improved = advanceState(state, hyper, val, lr, stoppedBySteps, o.maxSteps);
      const record = epochRecord({ epoch: state.epoch, step: state.step, lr, backend: backend.name, workers: parallel.threads }, sums, val, improved, { trainSec, valSec, computeMs });
      log(epochLogLine(label, record, hyper.valMetric, state.finished ? state.stopReason : null));

      // Commit order: checkpoints first, state.json last, so a crash resumes from a consistent epoch.
      await saveModel(model, join(runDir, 'last'));
      await saveOptimizerState(optimizer, join(runDir, 'last'));
      if (improved) await saveModel(model, join(runDir, 'best'));
      metricsLines.push(JSON.stringify(record));
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
  let evalPath: string | null = null;
  if (o.evaluate ?? true) {
    log('evaluating the best-validation checkpoint');
    report = await evaluateRun(runDir, {
      corporaRoot: config.corporaRoot, loadModel, log, auprImages: o.auprImages, egSamples: o.egSamples, concurrency: o.concurrency,
    });
    log(formatEvalTable(report));
    evalPath = join(runDir, 'eval.json');
    log(`results: ${evalPath}`);
  }
  log(`run folder: ${runDir}`);
  return { runDir, config, state, eval: report, evalPath };
}
