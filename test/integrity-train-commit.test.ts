/**
 * Issue #12, training side: an epoch is committed as one step. A crash anywhere in an epoch's save must leave a
 * run that resumes to exactly the weights of a run that never stopped; a resume on regenerated corpora is refused;
 * a run folder from before commits still resumes.
 *
 * Crashes are simulated by making the atomic-write helper throw at a chosen file, the first one written after a
 * weights.bin (so inside the next epoch's save, in any layout): everything written before it is on disk, nothing
 * after it is, as after a kill (the finally blocks that run after a throw write no run records).
 */
import { describe, it, expect, beforeAll, vi } from 'vitest';
import { cp, lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { readSourceManifest, type CorpusRow } from '../manifests/index.ts';
import { train, type TrainOptions } from '../trainer/train.ts';
import { CORPUS_ROWS_PER_PART, writeToyCorpus, writeToyDataset, type Toy } from './train-fixture.ts';

/** The file (by name) whose atomic write throws, once, after a weights.bin has been written; null: no crash. */
const crash = { at: null as RegExp | null, armed: false };
vi.mock('../manifests/io.ts', async (importOriginal) => {
  const io = await importOriginal<typeof import('../manifests/io.ts')>();
  const check = (path: string): void => {
    if (crash.at && crash.armed && crash.at.test(path)) { crash.at = null; crash.armed = false; throw new Error(`simulated crash writing ${path}`); }
    if (crash.at && /weights\.bin$/.test(path)) crash.armed = true;
  };
  return {
    ...io,
    writeFileAtomic: async (path: string, data: Uint8Array | string) => { check(path); return io.writeFileAtomic(path, data); },
    writeJsonAtomic: async (path: string, value: unknown) => { check(path); return io.writeJsonAtomic(path, value); },
  };
});

let toy: Toy;
let runsRoot: string;

function opts(o: Partial<TrainOptions>): TrainOptions {
  return {
    method: 'cf-tile', dataset: toy.dataset, corporaRoot: toy.corporaRoot, runsRoot, model: 'tiny', size: 16, batch: 4, epochs: 2,
    backend: 'wasm', evaluate: false, log: () => undefined, progress: 'off', ...o,
  };
}

const bytes = (run: string, f: string): Promise<Buffer> => readFile(join(runsRoot, run, 'last', f));

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'integ-commit-'));
  toy = await writeToyDataset(dir, { corpora: ['cf-tile'], side: 20, counts: { train: 10, val: 4, test: 4 } });
  runsRoot = join(dir, 'runs');
  await train(opts({ runId: 'straight' }));
});

describe('a crash while an epoch is saved leaves a run that resumes exactly', () => {
  for (const [what, at] of [
    ['between weights.bin and model.json', /model\.json$/],
    ['after the checkpoint, before state.json', /state\.json$/],
    ['after the epoch folder, before the commit point', /commit\.json$/],
  ] as const) {
    it(`${what}: the rerun trains epoch 2 once, to the straight run's bytes`, async () => {
      const id = `crash-${at.source.replace(/\W/g, '')}`;
      await train(opts({ runId: id, epochs: 1 }));
      crash.at = at;
      const err = await train(opts({ runId: id })).then(() => null, (e: unknown) => e);
      expect(String(err)).toMatch(/simulated crash/);
      const log: string[] = [];
      const r = await train(opts({ runId: id, log: (l) => log.push(l) }));
      expect(log.join('\n')).toMatch(/resuming after epoch 1/);
      expect(r.state).toMatchObject({ epoch: 2, step: 6 });
      expect((await bytes(id, 'weights.bin')).equals(await bytes('straight', 'weights.bin'))).toBe(true);
      expect((await bytes(id, 'optimizer.bin')).equals(await bytes('straight', 'optimizer.bin'))).toBe(true);
      const lines = (f: string) => readFile(join(runsRoot, f, 'metrics.jsonl'), 'utf8').then((t) => t.trim().split('\n').map((l) => JSON.parse(l).epoch));
      expect(await lines(id)).toEqual([1, 2]);
      // nothing uncommitted is left: one folder per referenced epoch
      expect((await readdir(join(runsRoot, id, 'commits'))).every((f) => /^epoch-\d{4}$/.test(f))).toBe(true);
    });
  }

  it('uncommitted leftovers are removed at the next start, and the log says so', async () => {
    await train(opts({ runId: 'leftovers', epochs: 1 }));
    const dir = join(runsRoot, 'leftovers');
    await mkdir(join(dir, 'commits', 'epoch-0002.tmp-1-0badcafe'));
    await cp(join(dir, 'commits', 'epoch-0001'), join(dir, 'commits', 'epoch-0002'), { recursive: true });
    await writeFile(join(dir, 'commit.json.tmp-1-deadbeef'), '{');
    const log: string[] = [];
    await train(opts({ runId: 'leftovers', log: (l) => log.push(l) }));
    expect(log.join('\n')).toMatch(/removed what no commit names .*commits\/epoch-0002\.tmp-1-0badcafe.*commit\.json\.tmp-1-deadbeef/);
    expect((await bytes('leftovers', 'weights.bin')).equals(await bytes('straight', 'weights.bin'))).toBe(true);
  });
});

describe('the run identity includes the corpora', () => {
  it('a resume after the corpus was regenerated is refused, naming the corpus; config.json is left alone', async () => {
    const corporaRoot = join(runsRoot, '..', 'regen-corpora');
    await cp(toy.corporaRoot, corporaRoot, { recursive: true });
    await train(opts({ runId: 'regen', epochs: 1, corporaRoot }));
    const config = await readFile(join(runsRoot, 'regen', 'config.json'), 'utf8');
    const corpus = join(corporaRoot, toy.dataset, 'cf-tile');
    const rows: CorpusRow[] = [];
    const { openCorpus } = await import('../manifests/reader.ts');
    for await (const r of (await openCorpus<CorpusRow>(corpus)).rows()) rows.push({ ...r, variant: 7 });
    const { metadata } = await readSourceManifest(join(corporaRoot, toy.dataset, 'source'));
    await rm(corpus, { recursive: true });
    await cp(join(toy.corporaRoot, toy.dataset, 'cf-tile', 'images'), join(corpus, 'images'), { recursive: true });
    await writeToyCorpus(corpus, { ...metadata, kind: 'corpus', config: { method: 'cf-tile', v: 2 } }, rows, CORPUS_ROWS_PER_PART);
    const e = await train(opts({ runId: 'regen', corporaRoot })).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toMatch(/corpora of run "regen" changed since it started \(cf-tile: [0-9a-f]{12} → [0-9a-f]{12}\)/);
    expect((e as Error).message).toMatch(/--fresh[\s\S]*--run-id/);
    expect(await readFile(join(runsRoot, 'regen', 'config.json'), 'utf8')).toBe(config);
  });
});

describe('committed epochs whose settings are unknown', () => {
  it('a run folder with commits but no config.json is refused, not resumed or trained over', async () => {
    const dir = join(runsRoot, 'noconfig');
    await cp(join(runsRoot, 'straight'), dir, { recursive: true, verbatimSymlinks: true });
    await rm(join(dir, 'config.json'));
    const e = await train(opts({ runId: 'noconfig' })).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toMatch(/trained epochs but no config\.json[\s\S]*--fresh/);
  });
});

describe('optimizers resume bit-exactly', () => {
  // 10 originals in batches of 2: 5 steps an epoch. After 5 steps tfjs's pow(β2, 6) and the product Adam
  // accumulated differ in the last bit, and 1 − β2^t passes the difference on to every update.
  for (const [optimizer, lr] of [['adam', 0.01], ['rmsprop', 0.001], ['sgd', 0.01]] as const) {
    it(`${optimizer}: 1 epoch + resume + 1 epoch gives the bytes of 2 epochs straight`, async () => {
      const o = { method: 'orig', optimizer, lr, momentum: 0.9, batch: 2 } as const;
      await train(opts({ ...o, runId: `${optimizer}-2` }));
      await train(opts({ ...o, runId: `${optimizer}-1+1`, epochs: 1 }));
      await train(opts({ ...o, runId: `${optimizer}-1+1`, valCacheMb: 0 }));
      expect((await bytes(`${optimizer}-1+1`, 'weights.bin')).equals(await bytes(`${optimizer}-2`, 'weights.bin'))).toBe(true);
      expect((await bytes(`${optimizer}-1+1`, 'optimizer.bin')).equals(await bytes(`${optimizer}-2`, 'optimizer.bin'))).toBe(true);
      // the validation cache does not change what validation computes
      const val = (run: string) => readFile(join(runsRoot, run, 'metrics.jsonl'), 'utf8').then((t) => t.trim().split('\n').map((l) => JSON.parse(l).val));
      expect(await val(`${optimizer}-1+1`)).toEqual(await val(`${optimizer}-2`));
    });
  }
});

describe('a run folder written before epoch commits', () => {
  it('is adopted and resumes to the straight run\'s bytes; last/ and best/ become links', async () => {
    await train(opts({ runId: 'old-src', epochs: 1 }));
    const src = join(runsRoot, 'old-src');
    const dir = join(runsRoot, 'old');
    // The pre-commit layout: config, state and metrics at the top, real last/ (with optimizer state) and best/ folders.
    await mkdir(join(dir, 'last'), { recursive: true });
    await mkdir(join(dir, 'best'));
    for (const f of ['config.json', 'state.json', 'metrics.jsonl']) await cp(join(src, f), join(dir, f));
    for (const f of ['model.json', 'weights.bin', 'optimizer.json', 'optimizer.bin']) await cp(join(src, 'commits', 'epoch-0001', f), join(dir, 'last', f));
    for (const f of ['model.json', 'weights.bin']) await cp(join(src, 'commits', 'epoch-0001', f), join(dir, 'best', f));
    await writeFile(join(dir, 'config.json'), (await readFile(join(dir, 'config.json'), 'utf8')).replace('"runId": "old-src"', '"runId": "old"'));
    const log: string[] = [];
    const r = await train(opts({ runId: 'old', log: (l) => log.push(l) }));
    expect(log.join('\n')).toMatch(/adopted epoch 1 into commits\/epoch-0001/);
    expect(r.state.epoch).toBe(2);
    expect((await bytes('old', 'weights.bin')).equals(await bytes('straight', 'weights.bin'))).toBe(true);
    expect((await lstat(join(dir, 'last'))).isSymbolicLink()).toBe(true);
    expect((await lstat(join(dir, 'best'))).isSymbolicLink()).toBe(true);
  });
});
