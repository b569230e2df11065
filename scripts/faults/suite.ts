/**
 * The suite's shared pieces: what a case is, and the uninterrupted reference runs the kill cases compare against
 * (built once per suite run, on demand, in one fixed work folder so absolute paths, and with them every id, are
 * the same in the reference and in each case).
 */
import { cp, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cfgen, resetTo, rootsIn, tail, treeHashes, type RunResult, type Roots } from './lib.ts';

export interface Ctx {
  /** the suite's temp folder (removed at the end unless --keep) */
  tmp: string;
  /** the suite seed; each case derives its own choices from it and its id */
  seed: number;
  /** CFGEN_FAULTS_FULL=1: the large memory point (100k images) */
  full: boolean;
}

export interface Outcome {
  status: 'held' | 'FAILED' | 'skipped';
  /** what was injected, as it happened (e.g. where the kill landed) */
  injected: string;
  /** failure details or the skip reason, printed under the case line */
  detail?: string[];
  /** numbers the summary repeats (memory figures) */
  figures?: Record<string, string>;
}

export interface Case {
  id: string;
  /** a rough cost in seconds on an idle 2-core machine, for the budget printed at the start */
  cost: number;
  run(ctx: Ctx): Promise<Outcome>;
}

// ---- the synth-waterbirds work folder and its references ----

/** Tiny settings: each command takes seconds. */
export const DATASET_ARGS = ['dataset', 'synth-waterbirds', '--size', '32', '--train', '60', '--val', '20', '--test', '20'];
export const GENERATE_ARGS = ['generate', '--dataset', 'synth-waterbirds', '--methods', 'cf-tile,f-random,cf-random', '--shard-size', '4', '--quiet'];
export const TRAIN_ARGS = [
  'train', '--method', 'cf-tile+f-random', '--dataset', 'synth-waterbirds', '--model', 'tiny', '--epochs', '2', '--size', '16',
  '--aupr-images', '0', '--no-generate',
];

export const work = (ctx: Ctx) => join(ctx.tmp, 'w');
export const workRoots = (ctx: Ctx): Roots => rootsIn(work(ctx));

export interface Reference {
  /** the run itself */
  run: RunResult;
  /** hashes of what it wrote (the tree the kill cases compare) */
  tree: Map<string, string>;
  /** files and folders it added to the work folder */
  entries: number;
  /** a copy of the work folder after it */
  snapshot: string;
}

const refs = new Map<string, Promise<Reference>>();

function entries(dir: string): number {
  return readdirSync(dir, { recursive: true }).length;
}

/** Run fields that change from run to run whatever the seed: timings and clock times. */
const VOLATILE = new Set(['images_per_s', 'compute_images_per_s', 'seconds', 'time']);

/** A run folder's bytes as compared: train.log left out (it has times), timings dropped from metrics lines. */
export function runTree(runsRoot: string): Promise<Map<string, string>> {
  return treeHashes(runsRoot, {
    skip: (rel) => /(^|\/)train\.log$/.test(rel),
    bytes: (rel, b) => {
      if (!rel.endsWith('metrics.jsonl')) return b;
      const lines = b.toString('utf8').split('\n').filter(Boolean).map((l) => {
        const o = JSON.parse(l) as Record<string, unknown>;
        for (const k of VOLATILE) delete o[k];
        return JSON.stringify(o);
      });
      return Buffer.from(lines.join('\n'));
    },
  });
}

async function build(ctx: Ctx, name: string, from: string | null, args: string[], tree: () => Promise<Map<string, string>>): Promise<Reference> {
  const w = work(ctx);
  await resetTo(w, from);
  const before = entries(w);
  const run = await cfgen(args, { roots: workRoots(ctx) });
  if (run.code !== 0) throw new Error(`the reference run \`cfgen ${args.join(' ')}\` failed (exit ${run.code ?? run.signal}):\n${tail(run, 20).join('\n')}`);
  const snapshot = join(ctx.tmp, `ref-${name}`);
  await rm(snapshot, { recursive: true, force: true });
  await cp(w, snapshot, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  return { run, tree: await tree(), entries: entries(w) - before, snapshot };
}

function memo(name: string, make: () => Promise<Reference>): Promise<Reference> {
  if (!refs.has(name)) refs.set(name, make());
  return refs.get(name)!;
}

/** `dataset` on an empty work folder: the tree of data/ and corpora/. */
export const datasetRef = (ctx: Ctx) => memo('dataset', () => build(ctx, 'dataset', null, DATASET_ARGS, () => treeHashes(work(ctx))));

/** `generate` after the dataset: the tree of corpora/. */
export const generateRef = (ctx: Ctx) => memo('generate', async () => {
  const d = await datasetRef(ctx);
  return build(ctx, 'generate', d.snapshot, GENERATE_ARGS, () => treeHashes(workRoots(ctx).corpora));
});

/** `train` after generate: the run folder as runTree compares it. */
export const trainRef = (ctx: Ctx) => memo('train', async () => {
  const g = await generateRef(ctx);
  return build(ctx, 'train', g.snapshot, TRAIN_ARGS, () => runTree(workRoots(ctx).runs));
});
