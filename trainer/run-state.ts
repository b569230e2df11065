import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { stableStringify } from '../manifests/io.ts';
import type { CfLossKind, MethodSpec } from './method.ts';
import type { SalNorm } from './losses.ts';
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
  /** how the saliency term is normalised (losses.ts SalNorm); configs written before it existed mean 'background-area' */
  salNorm?: SalNorm;
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
  if (o.freeze !== undefined) h.freeze = o.freeze;
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

/** The corpus id of each corpus a run reads (null for a corpus recorded without one). */
function corpusIdsOf(c: RunConfig): Record<string, string | null> {
  return Object.fromEntries(Object.entries(c.corpora ?? {}).map(([folder, s]) => [folder, s.corpusId ?? null]));
}

/**
 * The fields that make two runs the same run (a rerun with the same ones resumes; --epochs may grow). The corpus
 * ids are part of it: the same settings on regenerated corpora are another experiment, and resuming across the
 * change would mix two datasets in one run.
 */
export function identityOf(c: RunConfig): string {
  const { epochs: _e, ...hyper } = c.hyper;
  return stableStringify({ dataset: c.dataset, seed: c.seed, method: c.method.canonical, cfLoss: c.cfLoss, salNorm: salNormOf(c), hyper, model: c.model, init: c.init, corpora: corpusIdsOf(c) });
}

/** The saliency normalisation a run trains with; null without a sal term (then it changes nothing). */
function salNormOf(c: RunConfig): SalNorm | null {
  return c.method.sal ? (c.salNorm ?? 'background-area') : null;
}

/** The corpora whose id differs between two configs of a run, as `folder: old id → new id`. */
export function corpusChanges(a: RunConfig, b: RunConfig): string[] {
  const ia = corpusIdsOf(a), ib = corpusIdsOf(b);
  const short = (id: string | null | undefined): string => (id ? id.slice(0, 12) : 'none');
  return [...new Set([...Object.keys(ia), ...Object.keys(ib)])].sort()
    .filter((f) => ia[f] !== ib[f])
    .map((f) => `${f}: ${f in ia ? short(ia[f]) : 'not used'} → ${f in ib ? short(ib[f]) : 'not used'}`);
}

/** The identity fields in which two configs differ, as `name: old → new`, for the "other settings" error. */
export function diffFields(a: RunConfig, b: RunConfig): string[] {
  const flat = (c: RunConfig): Record<string, string> => {
    const { epochs: _e, ...hyper } = c.hyper;
    const o: Record<string, string> = { dataset: c.dataset, seed: String(c.seed), method: c.method.canonical, 'cf-loss': c.cfLoss, 'sal-norm': String(salNormOf(c)), init: String(c.init) };
    for (const [k, v] of Object.entries(hyper)) o[k] = stableStringify(v);
    return o;
  };
  const fa = flat(a), fb = flat(b);
  return Object.keys(fa).filter((k) => fa[k] !== fb[k]).map((k) => `${k}: ${fa[k]} → ${fb[k]}`);
}

/**
 * Refuse to resume the run in `runDir` (whose config.json is `old`) as `config` unless both are the same run.
 * When only the corpora changed the message says so and names them: the settings are the user's, a regenerated
 * corpus is easy to miss.
 */
export function assertSameRun(old: RunConfig, config: RunConfig, runDir: string): void {
  if (identityOf(old) === identityOf(config)) return;
  const corpora = corpusChanges(old, config);
  const others = diffFields(old, config);
  if (corpora.length && !others.length) {
    throw new UserError(`the corpora of run "${config.runId}" changed since it started (${corpora.join('; ')}): resuming would train one run on two datasets`, {
      file: join(runDir, 'config.json'), fix: 'pass --fresh to start this run over on the current corpora, or --run-id <new id> for a new run beside it',
    });
  }
  throw new UserError(`run "${config.runId}" already exists with other settings (${[...others, ...corpora.map((c) => `corpus ${c}`)].join('; ')})`, {
    file: runDir, fix: 'pass --run-id <new id> for a new run, or --fresh to delete this one and start over',
  });
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
 * The state.json in `runDir` (a commit folder, or the top of a run written before commits); null when it is not
 * there. A state.json that is there but unreadable is a UserError whose fix is `fix`: treating it as absent would
 * silently retrain the run from scratch over its checkpoints.
 */
export async function readRunState(
  runDir: string, fix = 'pass --fresh to delete the run and start over, or delete state.json to retrain the run from its first epoch',
): Promise<RunState | null> {
  const file = join(runDir, 'state.json');
  const text = await textIfThere(file);
  if (text === null) return null;
  try {
    const s = JSON.parse(text) as RunState;
    if (typeof s !== 'object' || s === null || !Number.isInteger(s.epoch) || !Number.isInteger(s.step)) throw new Error('no epoch/step counts');
    return s;
  } catch (e) {
    throw new UserError(`run state is corrupt (${(e as Error).message})`, { file, fix });
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
