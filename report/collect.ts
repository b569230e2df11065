import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import type { EvalReport } from '../trainer/evaluate.ts';
import { readRunConfig, type RunConfig } from '../trainer/run-state.ts';

/**
 * The runs a report covers, read from their folders (config.json, eval.json, metrics.jsonl) and nothing else, so a
 * report can be rebuilt from a copy of runs/ on any machine.
 */

/** One finished epoch of a run, as far as the report's curves need it. */
export interface EpochPoint {
  epoch: number;
  trainLoss: number | null;
  valMetric: number | null;
  valMetricName: string;
  valAcc: number | null;
}

/** A run folder, read. `eval` is null when the run was never evaluated (it is listed, not tabulated). */
export interface RunRecord {
  id: string;
  dir: string;
  config: RunConfig;
  dataset: string;
  method: string;
  seed: number;
  eval: EvalReport | null;
  epochs: EpochPoint[];
}

const isFile = async (p: string): Promise<boolean> => { try { return (await stat(p)).isFile(); } catch { return false; } };

/** Run folders under `runsRoot` (those holding a config.json), sorted by name. */
export async function listRunDirs(runsRoot: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = (await readdir(runsRoot)).sort();
  } catch {
    throw new UserError('no runs folder', { file: runsRoot, fix: 'train a run first (`make train`), or pass --runs-root' });
  }
  const out: string[] = [];
  for (const e of entries) if (await isFile(join(runsRoot, e, 'config.json'))) out.push(join(runsRoot, e));
  return out;
}

/** metrics.jsonl → one point per epoch (a later line for the same epoch, after a resume, wins). */
export function parseMetricsLines(text: string): EpochPoint[] {
  const byEpoch = new Map<number, EpochPoint>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let j: { epoch?: number; train?: { loss?: number | null }; val?: { metric?: number | null; metric_name?: string; acc?: number | null } };
    try { j = JSON.parse(line); } catch { continue; } // a line cut by a kill is not worth failing a report for
    if (typeof j.epoch !== 'number') continue;
    byEpoch.set(j.epoch, {
      epoch: j.epoch, trainLoss: j.train?.loss ?? null, valMetric: j.val?.metric ?? null, valMetricName: j.val?.metric_name ?? 'acc', valAcc: j.val?.acc ?? null,
    });
  }
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

/** Read one run folder. */
export async function readRun(dir: string): Promise<RunRecord> {
  const config = await readRunConfig(dir);
  let evalReport: EvalReport | null = null;
  try {
    evalReport = JSON.parse(await readFile(join(dir, 'eval.json'), 'utf8')) as EvalReport;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`unreadable eval.json (${(e as Error).message})`, { file: join(dir, 'eval.json'), fix: `re-evaluate: make eval RUN=${basename(dir)}` });
  }
  let epochs: EpochPoint[] = [];
  try { epochs = parseMetricsLines(await readFile(join(dir, 'metrics.jsonl'), 'utf8')); } catch { /* no epoch finished yet */ }
  return {
    id: config.runId ?? basename(dir), dir, config, dataset: config.dataset, method: config.method.canonical, seed: config.seed,
    eval: evalReport, epochs,
  };
}
