import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { datasetSlug, resolveRoot } from '../common/paths.ts';
import { UserError } from '../manifests/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../manifests/io.ts';
import { rngFor } from '../manifests/rng.ts';
import { TOOL_VERSION } from '../manifests/version.ts';
import { initBackend, type BackendChoice } from './backend.ts';
import { loadModel, loadWeightsInto, saveModel } from './checkpoint.ts';
import { checkCorpora, generateCorpora } from './corpora-check.ts';
import { assertCorporaUnchanged } from './data-corpora.ts';
import { loadDatasetIndex, type DatasetIndex } from './data-index.ts';
import { stepsPerEpoch, trainBatches } from './data-train.ts';
import { EpochSums, epochLogLine, epochRecord } from './epoch-record.ts';
import { EVAL_DEFAULTS } from './eval-defaults.ts';
import { evaluateRun, formatEvalTable, type EvalReport, type ValResult } from './evaluate.ts';
import { methodSlug, parseMethod, type CfLossKind } from './method.ts';
import { type PresetName } from './model.ts';
import { buildModel } from './model-build.ts';
import { loadOptimizerState, makeOptimizer, saveOptimizerState, setLearningRate } from './optimizer-state.ts';
import { startParallelStep } from './parallel.ts';
import { plateauStep, plateauValue, presetFor, scheduledLr, scheduleToString, type OptimizerName, type Schedule, type TrainPreset, type ValMetric } from './presets.ts';
import { Progress, RunLog } from './progress.ts';
import { commitEpoch } from './run-commit.ts';
import { assertRunNotLocked, holdRunFolder } from './run-folder.ts';
import type { ResumePoint } from './run-resume.ts';
import { assertSameRun, initialState, readRunConfig, resolveHyper, type Hyper, type RunConfig, type RunState } from './run-state.ts';
import { trainStep, type StepContext } from './step.ts';
import { initModelConfig, initWeights } from './weights/init.ts';
import { applyFreeze } from './freeze.ts';
import { VAL_CACHE_MB, ValidationSet, validate } from './validation.ts';
import type { SalNorm } from './losses.ts';

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
  /** saliency-term normalisation (losses.ts SalNorm); default 'authors' */
  salNorm?: SalNorm;
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
  /** train only from this stage / parameter prefix on (freeze.ts) */
  freeze?: string;
  /** a tfjs LayersModel folder (model.json + card.json) as the feature extractor (trainer/backbone/) */
  backbone?: string;
  /** the backbone layer to cut at (default: its last global pooling layer) */
  backboneLayer?: string;
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
  /** decoded validation images kept between epochs, in MiB (default VAL_CACHE_MB); the rest are decoded again each epoch */
  valCacheMb?: number;
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

/** A run that passed every check: its folder, config, dataset index and preset (its state is read under the lock). */
interface CheckedRun {
  runDir: string;
  config: RunConfig;
  index: DatasetIndex;
  preset: TrainPreset;
}

const RUN_ID = /^[A-Za-z0-9._@+-]+$/;

/**
 * Everything a run can fail on before anything is created: the METHOD, the run id, the options, the corpora (made
 * here when missing), the dataset, and an existing run folder's config and lock. Nothing is written to the run folder.
 */
async function checkRun(o: TrainOptions, log: (l: string) => void): Promise<CheckedRun> {
  const method = parseMethod(o.method);
  const seed = o.seed ?? 0;
  const runId = o.runId ?? `${datasetSlug(o.dataset)}-${methodSlug(method)}-s${seed}`;
  if (!RUN_ID.test(runId)) throw new UserError(`bad --run-id "${runId}"`, { fix: 'use letters, digits and . _ - + @ only' });
  const corporaRoot = resolveRoot('corpora', o.corporaRoot);
  const runDir = join(resolveRoot('runs', o.runsRoot), runId);
  await assertRunNotLocked(runDir, runId);
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
    runId, dataset: o.dataset, adapter: index.adapter, corporaRoot, seed, method, cfLoss: o.cfLoss ?? 'logp', salNorm: o.salNorm ?? 'authors', hyper,
    preset: { name: preset.name, source: preset.source, warning: preset.warning }, model: await initModelConfig({ init: o.init, backbone: o.backbone, backboneLayer: o.backboneLayer, preset: hyper.model, numClasses: index.classNames.length, size: hyper.size }, log),
    classNames: index.classNames, init: o.init ? resolve(o.init) : null, valSource: index.valSource, corpora, toolVersion: TOOL_VERSION,
  };
  if (!o.fresh && existsSync(join(runDir, 'config.json'))) {
    assertSameRun(await readRunConfig(runDir, 'pass --fresh to delete this run and start over, or --run-id <new id> for a new run'), config, runDir);
  }
  return { runDir, config, index, preset };
}

/** The run's opening lines: the preset's warnings in capitals, then what is trained on what. */
function logRunHeader(log: (l: string) => void, o: TrainOptions, { config, index, preset }: CheckedRun): void {
  const hyper = config.hyper;
  if (preset.warning) for (let i = 0; i < 2; i++) log(`!!! ${preset.warning} !!!`);
  if (index.adapter === 'waterbirds' && !o.dataset.startsWith('synth-') && !config.init) {
    log('!!! WATERBIRDS IN THE PAPER IS FINE-TUNED FROM PRETRAINED BiT-S R50x1 (lr 8e-4); WITHOUT --init THIS TRAINS FROM SCRATCH AND WILL UNDERPERFORM !!!');
  }
  log(`run ${config.runId}: ${o.dataset} (${index.adapter}), method ${config.method.canonical}, cf-loss ${config.cfLoss}${config.method.sal ? `, sal-norm ${config.salNorm}` : ''}, seed ${config.seed}`);
  log(`preset ${preset.name} (${preset.source}): model ${hyper.model} @ ${hyper.size} px, ${hyper.optimizer} lr ${hyper.lr} momentum ${hyper.momentum} wd ${hyper.weightDecay}, schedule ${scheduleToString(hyper.schedule)}, ${hyper.epochs} epochs, batch ${hyper.batch}, clip ${hyper.clipNorm}, early stopping ${hyper.patience || 'off'} on val ${hyper.valMetric}`);
  log(`data: ${index.train.length} train originals, ${index.val.length} val (${index.valSource}), test ${[...index.test].map(([s, r]) => `${s} ${r.length}`).join(', ') || 'none'}`);
  for (const [f, s] of Object.entries(index.corpusStats)) log(`corpus ${f}: ${s.originalsCovered}/${index.train.length} originals covered, ${s.variants} variant(s), ${s.skipped} skipped, ${s.errors} error rows`);
}

/** After an epoch: best-so-far, the plateau schedule and whether (and why) the run stops now. */
function advanceState(state: RunState, hyper: Hyper, val: ValResult, lr: number, stoppedBySteps: boolean, maxSteps?: number): boolean {
  const improved = val.metric > state.bestMetric || state.bestEpoch === null;
  if (improved) { state.bestMetric = val.metric; state.bestEpoch = state.epoch; state.epochsSinceBest = 0; }
  else state.epochsSinceBest++;
  if (state.plateau && hyper.schedule.kind === 'plateau') state.plateau = plateauStep(state.plateau, plateauValue(hyper.schedule, val), hyper.schedule);
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
  // Only now, with every check passed, does the run folder come into being (or, with --fresh, get emptied), locked
  // for this process until the run has been evaluated.
  const held = await holdRunFolder(run.runDir, run.config, { fresh: o.fresh ?? false, log: runLog.line });
  try {
    return await trainHeld(o, run, runLog, held.resume);
  } finally {
    await held.lock.release();
  }
}

async function trainHeld(o: TrainOptions, run: CheckedRun, runLog: RunLog, resume: ResumePoint | null): Promise<TrainResult> {
  const log = runLog.line;
  const { runDir, config, index } = run;
  const { hyper, method, seed } = config;
  runLog.attach(runDir);
  await writeJsonAtomic(join(runDir, 'config.json'), config);

  const backend = await initBackend({ backend: o.backend ?? 'auto', threads: o.threads });
  log(`backend ${backend.name} (${backend.reason})`);
  logRunHeader(log, o, run);

  const numClasses = index.classNames.length;
  const model = await buildModel(config.model, seed);
  const optimizer = makeOptimizer(hyper);
  // Not part of the run identity: it changes float rounding (and FGSM/mixup draws per shard), not the experiment.
  const parallel = await startParallelStep({ threads: o.workers ?? 1, model: config.model, backend: backend.name as BackendChoice, log });
  if (parallel.threads > 1) log(`data-parallel steps: ${parallel.threads} threads (this one + ${parallel.threads - 1} workers)`);
  let state = resume?.state ?? null;
  let commit = resume?.commit ?? null;
  try {
    if (resume && state) {
      await loadWeightsInto(model, resume.dir, { strict: true });
      const had = await loadOptimizerState(optimizer, resume.dir);
      log(`resuming after epoch ${state.epoch} (step ${state.step}, best ${state.bestEpoch === null ? 'none' : `epoch ${state.bestEpoch}: ${state.bestMetric.toFixed(4)}`})${had ? '' : ', optimizer state not found: starting it fresh'}`);
      // More epochs than last time, or a smoke run's step cap lifted: continue after the last finished epoch.
      const moreEpochs = state.stopReason === 'epochs' && state.epoch < hyper.epochs;
      const capLifted = state.stopReason?.startsWith('max-steps') === true && (o.maxSteps === undefined || o.maxSteps > state.step) && state.epoch < hyper.epochs;
      if (state.finished && (moreEpochs || capLifted)) { state.finished = false; state.stopReason = null; }
    } else if (config.init) {
      await initWeights(model, config.init, log);
    }
    state ??= initialState(hyper);
    if (hyper.freeze) log(applyFreeze(model, hyper.freeze));
    const metricsLines = resume?.metricsLines ?? [];

    const ctx: StepContext = { model, optimizer, method, cfLoss: config.cfLoss, salNorm: config.salNorm, numClasses, clipNorm: hyper.clipNorm, weightDecay: hyper.weightDecay };
    const withMasks = method.sal !== null || method.fgsm !== null;
    const progress = new Progress((o.progress ?? 'auto') === 'auto' && process.stderr.isTTY === true, log);
    const valSet = new ValidationSet(index.root, index.val, { size: hyper.size, batchSize: EVAL_DEFAULTS.batchSize, concurrency: o.concurrency, cacheBytes: (o.valCacheMb ?? VAL_CACHE_MB) * 2 ** 20 });
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
      try {
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
      } catch (e) {
        progress.stop();
        // An image that vanished because its corpus is being regenerated: say that, not which file was missing.
        await assertCorporaUnchanged(index, epoch + 1);
        throw e;
      }
      progress.stop();
      // Never commit an epoch whose images may come from two corpora.
      await assertCorporaUnchanged(index, epoch + 1);
      const trainSec = (Date.now() - t0) / 1000;

      const v0 = Date.now();
      const val = await validate(model, valSet, hyper.size, hyper.valMetric);
      const valSec = (Date.now() - v0) / 1000;
      state.epoch = epoch + 1;
      const improved = advanceState(state, hyper, val, lr, stoppedBySteps, o.maxSteps);
      const record = epochRecord({ epoch: state.epoch, step: state.step, lr, backend: backend.name, workers: parallel.threads }, sums, val, improved, { trainSec, valSec, computeMs });
      log(epochLogLine(label, record, hyper.valMetric, state.finished ? state.stopReason : null));

      metricsLines.push(JSON.stringify(record));
      // The epoch is committed as one step (run-commit.ts): a crash leaves this epoch or the one before, never a mix.
      const done = state;
      commit = await commitEpoch(runDir, done.epoch, commit, improved, async (dir) => {
        await saveModel(model, dir);
        await saveOptimizerState(optimizer, dir);
        await writeFileAtomic(join(dir, 'metrics.jsonl'), metricsLines.join('\n') + '\n');
        await writeJsonAtomic(join(dir, 'state.json'), done);
      });
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
