/**
 * kill -9 at seeded points of `dataset`, `generate` and `train`, then the same command again: the result must be
 * byte-identical to an uninterrupted run's (dataset: every file under data/ and corpora/; generate: every file of
 * every corpus, corpus ids included, and `cfgen verify` passes; train: every file of the run folder but train.log,
 * with timings left out of the metrics lines, so checkpoint weights, optimizer state, state, metrics and eval.json).
 *
 * Kill points: dataset and generate are killed once the work folder holds a seeded number of entries (files and
 * folders, counted recursively, between 1 and what the uninterrupted run writes), so the points spread over the
 * work whatever the file layout; train, whose writes are few, at a seeded time between its first and last output
 * line, expressed as "line k + d ms" of the reference run so it follows the run's pace.
 */
import { readFile, readdir } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Checks, cfgen, exists, findFiles, intIn, resetTo, rng, secs, treeHashes, type RunResult } from '../lib.ts';
import { DATASET_ARGS, GENERATE_ARGS, TRAIN_ARGS, datasetRef, generateRef, runTree, trainRef, work, workRoots, type Case, type Ctx, type Outcome } from '../suite.ts';

export const KILLS_PER_COMMAND = 10;

const entries = (dir: string) => { try { return readdirSync(dir, { recursive: true }).length; } catch { return 0; } };

const when = (r: RunResult) => (r.killed ? `killed at ${secs(r.killedAtMs ?? r.ms)}` : `it exited (${r.code ?? r.signal}) before the kill`);

async function corpusState(corpora: string): Promise<string> {
  const done = (await findFiles(corpora, /\.done$/)).length;
  const finished = (await findFiles(corpora, /(^|\/)corpus\.json$/)).length;
  return `${done} done markers, ${finished}/3 corpus.json`;
}

async function killDataset(ctx: Ctx, id: string): Promise<Outcome> {
  const c = new Checks();
  const ref = await datasetRef(ctx);
  const w = work(ctx);
  await resetTo(w, null);
  const k = intIn(rng(ctx.seed, id), 1, ref.entries - 1);
  const killed = await cfgen(DATASET_ARGS, { roots: workRoots(ctx), kill: { entries: k, dir: w } });
  const at = entries(w);
  const rerun = await cfgen(DATASET_ARGS, { roots: workRoots(ctx) });
  c.exit(rerun, 0, 'rerun');
  c.sameTree(await treeHashes(w), ref.tree, 'data/ + corpora/ after the rerun');
  return { status: c.failures.length ? 'FAILED' : 'held', injected: `SIGKILL at ${k}/${ref.entries} entries (${when(killed)}, ${at} on disk)`, detail: c.failures };
}

async function killGenerate(ctx: Ctx, id: string): Promise<Outcome> {
  const c = new Checks();
  const ds = await datasetRef(ctx);
  const ref = await generateRef(ctx);
  const w = work(ctx);
  const roots = workRoots(ctx);
  await resetTo(w, ds.snapshot);
  const r = rng(ctx.seed, id);
  const k = intIn(r, 1, ref.entries - 1);
  const workers = [intIn(r, 1, 2), intIn(r, 1, 2)];
  const killed = await cfgen([...GENERATE_ARGS, '--workers', String(workers[0])], { roots, kill: { entries: entries(w) + k, dir: w } });
  const state = await corpusState(roots.corpora);
  const rerun = await cfgen([...GENERATE_ARGS, '--workers', String(workers[1])], { roots });
  c.exit(rerun, 0, 'rerun');
  c.sameTree(await treeHashes(roots.corpora), ref.tree, 'corpora/ after the rerun');
  const verify = await cfgen(['verify', '--dataset', 'synth-waterbirds'], { roots });
  c.exit(verify, 0, 'cfgen verify');
  return {
    status: c.failures.length ? 'FAILED' : 'held',
    injected: `SIGKILL at ${k}/${ref.entries} entries, --workers ${workers[0]} then ${workers[1]} (${when(killed)}: ${state})`,
    detail: c.failures,
  };
}

async function killTrain(ctx: Ctx, id: string): Promise<Outcome> {
  const c = new Checks();
  const gen = await generateRef(ctx);
  const ref = await trainRef(ctx);
  const roots = workRoots(ctx);
  await resetTo(work(ctx), gen.snapshot);
  // a seeded time between the reference's first and last line, anchored to the line before it
  const lines = ref.run.lines;
  const t = lines[0].ms + rng(ctx.seed, id)() * (lines[lines.length - 1].ms - lines[0].ms);
  let line = 0;
  while (line + 1 < lines.length && lines[line + 1].ms <= t) line++;
  const delayMs = Math.round(t - lines[line].ms);
  const killed = await cfgen(TRAIN_ARGS, { roots, kill: { line, delayMs } });
  const runDir = join(roots.runs, (await readdir(roots.runs).catch(() => [] as string[])).find((f) => !f.startsWith('.')) ?? '-');
  const commit = await readFile(join(runDir, 'commit.json'), 'utf8').then((s) => `epoch ${JSON.parse(s).epoch} committed`, () => 'nothing committed');
  const evaluated = (await exists(join(runDir, 'eval.json'))) ? ', eval.json written' : '';
  const rerun = await cfgen(TRAIN_ARGS, { roots });
  c.exit(rerun, 0, 'rerun');
  c.sameTree(await runTree(roots.runs), ref.tree, 'the run folder after the rerun (weights, optimizer, state, metrics, eval.json)');
  const shown = lines[line].text.length > 40 ? `${lines[line].text.slice(0, 40)}…` : lines[line].text;
  return {
    status: c.failures.length ? 'FAILED' : 'held',
    injected: `SIGKILL ${delayMs} ms after line ${line + 1} ("${shown}") (${when(killed)}: ${commit}${evaluated})`,
    detail: c.failures,
  };
}

const two = (i: number) => String(i).padStart(2, '0');

export const killCases: Case[] = [
  ...Array.from({ length: KILLS_PER_COMMAND }, (_, i): Case => ({ id: `kill/dataset#${two(i + 1)}`, cost: 4, run: (ctx) => killDataset(ctx, `kill/dataset#${i + 1}`) })),
  ...Array.from({ length: KILLS_PER_COMMAND }, (_, i): Case => ({ id: `kill/generate#${two(i + 1)}`, cost: 6, run: (ctx) => killGenerate(ctx, `kill/generate#${i + 1}`) })),
  ...Array.from({ length: KILLS_PER_COMMAND }, (_, i): Case => ({ id: `kill/train#${two(i + 1)}`, cost: 7, run: (ctx) => killTrain(ctx, `kill/train#${i + 1}`) })),
];
