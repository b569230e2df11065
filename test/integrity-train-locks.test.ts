/**
 * Issue #12, training side: one training process per run folder, and a corpus regenerated under a running
 * training stops it with the reason, without committing the epoch that may have read two corpora.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { train, type TrainOptions } from '../trainer/train.ts';
import { writeToyDataset, type Toy } from './train-fixture.ts';

let toy: Toy;
let work: string;

function opts(o: Partial<TrainOptions>): TrainOptions {
  return {
    method: 'cf-tile', dataset: toy.dataset, corporaRoot: toy.corporaRoot, runsRoot: join(work, 'runs'), model: 'tiny', size: 16, batch: 4, epochs: 2,
    backend: 'wasm', evaluate: false, generate: false, log: () => undefined, progress: 'off', ...o,
  };
}

const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => null, (e: unknown) => e);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'integ-locks-'));
  toy = await writeToyDataset(work, { corpora: ['cf-tile'], side: 20, counts: { train: 8, val: 4, test: 4 } });
});

describe('one train per run folder', () => {
  it('a second train of a run being trained stops at once, naming the holder; the first one finishes', async () => {
    let second: Promise<unknown> | null = null;
    const first = train(opts({
      runId: 'busy',
      log: (l) => { if (!second && l.startsWith('backend ')) second = rejection(train(opts({ runId: 'busy' }))); },
    }));
    const r = await first;
    expect(r.state.epoch).toBe(2);
    const e = await second!;
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toMatch(new RegExp(`run "busy" is being trained by pid ${process.pid} on host ${hostname()} since `));
    expect((e as Error).message).toMatch(/rm .*busy\/train\.lock/);
  });

  it('a lock left by a process that died on this machine is taken over, and the log says so', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const dir = join(work, 'runs', 'stale');
    await cp(join(work, 'runs', 'busy'), dir, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(dir, 'config.json'), (await readFile(join(dir, 'config.json'), 'utf8')).replace('"runId": "busy"', '"runId": "stale"'));
    await writeFile(join(dir, 'train.lock'), JSON.stringify({ pid: dead, hostname: hostname(), started: '2020-01-01T00:00:00.000Z' }));
    const log: string[] = [];
    await train(opts({ runId: 'stale', epochs: 3, log: (l) => log.push(l) }));
    expect(log.join('\n')).toMatch(new RegExp(`took over the stale lock .*train\\.lock: pid ${dead} on ${hostname()}`));
  });

  it('a lock held on another machine is never taken over', async () => {
    const dir = join(work, 'runs', 'remote');
    await cp(join(work, 'runs', 'busy'), dir, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(dir, 'train.lock'), JSON.stringify({ pid: 1, hostname: 'elsewhere', started: '2020-01-01T00:00:00.000Z' }));
    const e = await rejection(train(opts({ runId: 'remote' })));
    expect((e as Error).message).toMatch(/run "remote" is being trained by pid 1 on host elsewhere/);
  });
});

describe('a corpus regenerated while a run trains on it', () => {
  it('removed (generate --force): the run stops with the reason, epoch 2 is not committed, and resumes once it is back', async () => {
    const corporaRoot = join(work, 'force', 'corpora');
    await cp(toy.corporaRoot, corporaRoot, { recursive: true });
    const corpus = join(corporaRoot, toy.dataset, 'cf-tile');
    const backup = join(work, 'force', 'backup');
    await cp(corpus, backup, { recursive: true });
    // After epoch 1 is trained and validated, before it is committed: the next epoch's image reads fail.
    const e = await rejection(train(opts({ runId: 'force', corporaRoot, log: (l) => { if (l.startsWith('epoch 1/2')) rmSync(corpus, { recursive: true }); } })));
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toMatch(/corpus cf-tile changed while this run was training on it: its corpus\.json is gone or unreadable \(is it being regenerated\?\); epoch 2 is not committed/);
    const commit = JSON.parse(readFileSync(join(work, 'runs', 'force', 'commit.json'), 'utf8'));
    expect(commit.epoch).toBe(1);
    await cp(backup, corpus, { recursive: true });
    const log: string[] = [];
    const r = await train(opts({ runId: 'force', corporaRoot, log: (l) => log.push(l) }));
    expect(log.join('\n')).toMatch(/resuming after epoch 1/);
    expect(r.state.epoch).toBe(2);
  });

  it('regenerated with another id between two reads: the epoch is not committed', async () => {
    const corporaRoot = join(work, 'newid', 'corpora');
    await cp(toy.corporaRoot, corporaRoot, { recursive: true });
    const info = join(corporaRoot, toy.dataset, 'cf-tile', 'corpus.json');
    const swap = (): void => writeFileSync(info, JSON.stringify({ ...JSON.parse(readFileSync(info, 'utf8')), corpus_id: 'f'.repeat(64) }));
    const e = await rejection(train(opts({ runId: 'newid', corporaRoot, log: (l) => { if (l.startsWith('epoch 1/2')) swap(); } })));
    expect((e as Error).message).toMatch(/corpus cf-tile changed while this run was training on it: it is now corpus ffffffffffff, not [0-9a-f]{12} \(regenerated\); epoch 2 is not committed/);
    expect(JSON.parse(readFileSync(join(work, 'runs', 'newid', 'commit.json'), 'utf8')).epoch).toBe(1);
  });
});
