import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { stableStringify } from '../manifests/io.ts';
import type { CfLossKind, MethodSpec } from './method.ts';
import type { ModelConfig } from './model.ts';
import type { PlateauState, TrainPreset } from './presets.ts';

/**
 * A run folder's records (`runs/<run-id>/`): what the run is (config.json), how far it got (state.json) and its
 * per-epoch history (metrics.jsonl), and the rules that decide whether a rerun resumes it.
 */

/** The hyperparameters a run trains with: the preset with the CLI overrides applied. */
export type Hyper = Omit<TrainPreset, 'name' | 'source' | 'warning'>;

/** `config.json`: everything that defines a run, written before its first epoch. */
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

/** `state.json`: where a run stands after its last finished epoch (written last, so it never runs ahead of the checkpoints). */
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

/** The state of a run before its first epoch. */
export function initialState(hyper: Hyper): RunState {
  return {
    epoch: 0, step: 0, lr: hyper.lr, bestMetric: -Infinity, bestEpoch: null, epochsSinceBest: 0,
    plateau: hyper.schedule.kind === 'plateau' ? { best: -Infinity, bad: 0, lr: hyper.lr } : null,
    finished: false, stopReason: null, skippedSteps: 0,
  };
}

/** Resolve preset + overrides into the run's hyperparameters; a UserError names the first bad value. */
export function resolveHyper(preset: TrainPreset, o: Partial<Hyper>): Hyper {
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
export function identityOf(c: RunConfig): string {
  const { epochs: _e, ...hyper } = c.hyper;
  return stableStringify({ dataset: c.dataset, seed: c.seed, method: c.method.canonical, cfLoss: c.cfLoss, hyper, model: c.model, init: c.init });
}

/** The identity fields in which two configs differ, as `name: old → new`, for the "other settings" error. */
export function diffFields(a: RunConfig, b: RunConfig): string[] {
  const flat = (c: RunConfig): Record<string, string> => {
    const { epochs: _e, ...hyper } = c.hyper;
    const o: Record<string, string> = { dataset: c.dataset, seed: String(c.seed), method: c.method.canonical, 'cf-loss': c.cfLoss, init: String(c.init) };
    for (const [k, v] of Object.entries(hyper)) o[k] = stableStringify(v);
    return o;
  };
  const fa = flat(a), fb = flat(b);
  return Object.keys(fa).filter((k) => fa[k] !== fb[k]).map((k) => `${k}: ${fa[k]} → ${fb[k]}`);
}

/** A file's text, or null when it does not exist (any other read error is thrown). */
async function textIfThere(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * A run folder's config.json; a UserError when it is missing or unreadable (the folder is not a run). `fix` is
 * what the caller's user can do about it (eval: name another run; train: start this one over).
 */
export async function readRunConfig(runDir: string, fix = 'give --run the id of a folder under the runs root that `train` wrote'): Promise<RunConfig> {
  try {
    return JSON.parse(await readFile(join(runDir, 'config.json'), 'utf8')) as RunConfig;
  } catch {
    throw new UserError('not a training run (no readable config.json)', { file: runDir, fix });
  }
}

/**
 * The run's state.json; null when it is not there (the run never finished an epoch). A state.json that is there
 * but unreadable is a UserError: treating it as absent would silently retrain the run from scratch over its
 * checkpoints.
 */
export async function readRunState(runDir: string): Promise<RunState | null> {
  const file = join(runDir, 'state.json');
  const text = await textIfThere(file);
  if (text === null) return null;
  try {
    const s = JSON.parse(text) as RunState;
    if (typeof s !== 'object' || s === null || !Number.isInteger(s.epoch) || !Number.isInteger(s.step)) throw new Error('no epoch/step counts');
    return s;
  } catch (e) {
    throw new UserError(`run state is corrupt (${(e as Error).message})`, {
      file, fix: 'pass --fresh to delete the run and start over, or delete state.json to retrain the run from its first epoch',
    });
  }
}

/**
 * The lines of the run's metrics.jsonl for epochs up to `upToEpoch` (a crash after metrics.jsonl was written but
 * before state.json can leave one epoch more); [] when the file is not there yet. A line that is not JSON is a
 * UserError naming it: dropping the history would make the rewritten file lose every earlier epoch.
 */
export async function readMetricsHistory(runDir: string, upToEpoch: number): Promise<string[]> {
  const file = join(runDir, 'metrics.jsonl');
  const text = await textIfThere(file);
  if (text === null) return [];
  const kept: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let epoch: unknown;
    try { epoch = (JSON.parse(line) as { epoch?: unknown }).epoch; } catch { epoch = undefined; }
    if (typeof epoch !== 'number') {
      throw new UserError(`line ${i + 1} is not an epoch record (JSON with an "epoch" number)`, {
        file, fix: `repair or delete line ${i + 1}, or pass --fresh to delete the run and start over`,
      });
    }
    if (epoch <= upToEpoch) kept.push(line);
  });
  return kept;
}
