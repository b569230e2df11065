/**
 * What `train` checks before it creates anything, what it refuses to resume from (corrupt run records are errors
 * that name the file and the fix, never a silent restart), what it tells at the end, and eval.json merging.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { loadModel } from '../trainer/checkpoint.ts';
import { mergeEvalReports } from '../trainer/eval-file.ts';
import { evaluateRun, type EvalReport } from '../trainer/evaluate.ts';
import { train, type TrainOptions, type TrainResult } from '../trainer/train.ts';
import { writeToyDataset, type Toy } from './train-fixture.ts';

let toy: Toy;
let runsRoot: string;
let base: TrainResult;
const baseLog: string[] = [];

function opts(over: Partial<TrainOptions>): TrainOptions {
  return {
    method: 'orig', dataset: toy.dataset, corporaRoot: toy.corporaRoot, runsRoot, model: 'tiny', size: 16, batch: 4, epochs: 1,
    backend: 'wasm', evaluate: false, log: () => undefined, progress: 'off', ...over,
  };
}

/** A copy of the one-epoch base run under another id, to damage (its links stay relative, into the copy). */
async function copyOfBase(id: string): Promise<string> {
  const dir = join(runsRoot, id);
  await cp(base.runDir, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

/** The committed epoch-1 folder of a copy: what a resume reads. */
const committed = (dir: string, f: string): string => join(dir, 'commits', 'epoch-0001', f);

async function rejection(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'trchk-'));
  toy = await writeToyDataset(dir, { corpora: ['cf-tile'], side: 20, counts: { train: 8, val: 4, test: 8 } });
  runsRoot = join(dir, 'runs');
  base = await train(opts({ runId: 'base', evaluate: true, auprImages: 2, egSamples: 1, log: (l) => baseLog.push(l) }));
});

describe('train: nothing is created until the checks pass', () => {
  it('a misspelt corpus fails at once, says what it probably meant, and leaves no run folder', async () => {
    const e = await rejection(train(opts({ method: 'cf-tilee', runId: 'typo' })));
    expect(e.message).toMatch(/cf-tilee \(did you mean cf-tile\?\)/);
    expect(e.message).toMatch(/built-in corpora: .*cf-grey/);
    expect(existsSync(join(runsRoot, 'typo'))).toBe(false);
  });

  it('a bad option, a missing dataset, a bad run id: no run folder either', async () => {
    expect((await rejection(train(opts({ runId: 'badopt', epochs: 0 })))).message).toMatch(/--epochs must be a positive integer/);
    expect((await rejection(train(opts({ runId: 'nodata', dataset: 'nope' })))).message).toMatch(/has no source manifest/);
    expect((await rejection(train(opts({ runId: 'bad/id' })))).message).toMatch(/bad --run-id/);
    for (const id of ['badopt', 'nodata', 'bad']) expect(existsSync(join(runsRoot, id))).toBe(false);
  });

  it('ends by naming eval.json and the run folder (logged and returned)', () => {
    expect(base.evalPath).toBe(join(base.runDir, 'eval.json'));
    expect(baseLog).toContain(`results: ${join(base.runDir, 'eval.json')}`);
    expect(baseLog.at(-1)).toBe(`run folder: ${base.runDir}`);
  });
});

describe('train: corrupt run records are errors, not a silent restart', () => {
  it('an unreadable committed state.json names the file and --fresh', async () => {
    const dir = await copyOfBase('badstate');
    await writeFile(committed(dir, 'state.json'), '{"epoch": 1, "st');
    const e = await rejection(train(opts({ runId: 'badstate', epochs: 2 })));
    expect(e.message).toContain(committed(dir, 'state.json'));
    expect(e.message).toMatch(/--fresh/);
    // nothing was retrained over the checkpoints
    expect(await readFile(join(dir, 'metrics.jsonl'), 'utf8')).toBe(await readFile(join(base.runDir, 'metrics.jsonl'), 'utf8'));
  });

  it('a bad metrics.jsonl line names the file and the line', async () => {
    const dir = await copyOfBase('badmetrics');
    const good = await readFile(committed(dir, 'metrics.jsonl'), 'utf8');
    await writeFile(committed(dir, 'metrics.jsonl'), `${good}{"epoch": 2, "trai\n`);
    const e = await rejection(train(opts({ runId: 'badmetrics', epochs: 2 })));
    expect(e.message).toContain(committed(dir, 'metrics.jsonl'));
    expect(e.message).toMatch(/line 2\b/);
    expect(e.message).toMatch(/--fresh/);
  });

  it('corrupt optimizer state is an error naming the file; missing optimizer state resumes with a fresh one', async () => {
    const dirJ = await copyOfBase('badoptjson');
    await writeFile(committed(dirJ, 'optimizer.json'), '{"weights": [');
    const ej = await rejection(train(opts({ runId: 'badoptjson', epochs: 2 })));
    expect(ej.message).toContain(committed(dirJ, 'optimizer.json'));
    expect(ej.message).toMatch(/--fresh/);

    const dirB = await copyOfBase('badoptbin');
    await truncate(committed(dirB, 'optimizer.bin'), 12);
    const eb = await rejection(train(opts({ runId: 'badoptbin', epochs: 2 })));
    expect(eb.message).toContain(committed(dirB, 'optimizer.bin'));
    expect(eb.message).toMatch(/12 bytes/);

    const dirM = await copyOfBase('nooptstate');
    await rm(committed(dirM, 'optimizer.json'));
    await rm(committed(dirM, 'optimizer.bin'));
    const log: string[] = [];
    const r = await train(opts({ runId: 'nooptstate', epochs: 2, log: (l) => log.push(l) }));
    expect(r.state.epoch).toBe(2);
    expect(log.join('\n')).toMatch(/optimizer state not found: starting it fresh/);
  });
});

describe('eval: eval.json is merged, never replaced', () => {
  it('a re-evaluation without saliency keeps the earlier saliency AUPR, and says so', async () => {
    const first = JSON.parse(await readFile(join(base.runDir, 'eval.json'), 'utf8')) as EvalReport;
    expect(first.saliency).not.toBeNull();
    const log: string[] = [];
    const again = await evaluateRun(base.runDir, { loadModel, auprImages: 0, log: (l) => log.push(l) });
    const written = JSON.parse(await readFile(join(base.runDir, 'eval.json'), 'utf8')) as EvalReport;
    expect(written.saliency).toEqual(first.saliency);
    expect(written.kept).toEqual({ saliency: { bestEpoch: 1 } });
    expect(written.splits.test.n).toBe(8);
    expect(again.saliency).toEqual(first.saliency);
    expect(log.join('\n')).toMatch(/kept from the earlier eval\.json: saliency/);
  });

  it('the saliency pass reports images done / total as it goes', async () => {
    const log: string[] = [];
    await evaluateRun(base.runDir, { loadModel, auprImages: 2, egSamples: 2, progressEveryMs: 0, batchSize: 1, log: (l) => log.push(l) });
    expect(log).toContain('saliency test/original: 1/2 images');
    expect(log).toContain('saliency test/original: 2/2 images');
    expect(log.some((l) => /^saliency test\/flip: 1\/2 images \(expected gradients of the next 1: draw 2\/2\)$/.test(l))).toBe(true);
  });

  it('mergeEvalReports: values the new report lacks come from the old one, with their origin', () => {
    const report = (over: Partial<EvalReport>): EvalReport => ({
      run: 'r', dataset: 'd', adapter: 'waterbirds', method: 'orig', seed: 0, checkpoint: 'best', bestEpoch: 3, size: 16, classNames: ['a', 'b'],
      splits: { test: { n: 4, acc: 0.5 } }, nextClassShift: null, saliency: null, headline: { Original: 0.5 }, ...over,
    });
    const sal = { subsets: { test: { inputGradient: { mean: 0.7, n: 4, skipped: 0 }, expectedGradients: { mean: 0.8, n: 4, skipped: 0 } } }, imagesPerSubset: 4, egSamples: 2 };
    const old = report({ bestEpoch: 2, saliency: sal, kept: { 'saliency.subsets.test.expectedGradients': { bestEpoch: 1 } } });
    const m = mergeEvalReports(old, report({ splits: { test: { n: 4, acc: 0.75 } } }));
    expect(m.splits.test.acc).toBe(0.75);
    expect(m.bestEpoch).toBe(3);
    expect(m.saliency).toEqual(sal);
    expect(m.kept).toEqual({ saliency: { bestEpoch: 2 }, 'saliency.subsets.test.expectedGradients': { bestEpoch: 1 } });
    // a complete new report keeps nothing and says nothing
    expect(mergeEvalReports(old, report({ saliency: sal })).kept).toBeUndefined();
  });
});
