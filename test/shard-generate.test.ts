import { describe, it, expect } from 'vitest';
import { cp, mkdtemp, readdir, readFile, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GENERATE_DEFAULTS, claimPath, createProgress, finalizeCorpus, ownedShards, ownsShard, runGenerate, shardAssignment,
  type GenerateOptions,
} from '../pipeline/generate/index.ts';
import { claimShard } from '../pipeline/generate/claims.ts';
import { acquireLock, LockHeldError } from '../common/lock.ts';
import { verifyCorpus } from '../pipeline/verify.ts';
import { openCorpus } from '../manifests/index.ts';
import { makeFixture, treeHashes, type Fixture } from './generate-fixture.ts';

/**
 * Issue #11: sharded generation. Worker i of N writes the shards s with s mod N = i under per-shard claims; the last
 * worker (or `finalize`) stamps the corpus. N workers must write exactly what one process writes.
 */

const METHODS = ['cf-random', 'cf-tile', 'f-mixed-rand'];
const TIMING = { staleMs: 1500, heartbeatMs: 100 };

const options = (sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, shardSize: 2, methods: METHODS, variants: 2,
  env: {}, claimTiming: TIMING, progress: createProgress({ quiet: true }), log: () => {}, ...extra,
});

/** A copy of the fixture's source manifest in its own corpora folder (the same bytes, so the same corpus ids). */
async function copySource(fx: Fixture): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'shard-'));
  const src = join(tmp, 'corpora', 'toy', 'source');
  await cp(fx.sourceDir, src, { recursive: true });
  return src;
}

/** The single-process reference: every file of every corpus, and the ids. */
async function reference(fx: Fixture, extra: Partial<GenerateOptions> = {}) {
  const src = await copySource(fx);
  const s = await runGenerate(options(src, extra));
  const trees: Record<string, Record<string, string>> = {};
  for (const m of METHODS) trees[m] = await treeHashes(join(src, '..', m));
  return { ids: s.methods.map((m) => m.corpusId), trees };
}

async function treesOf(src: string) {
  const trees: Record<string, Record<string, string>> = {};
  for (const m of METHODS) trees[m] = await treeHashes(join(src, '..', m));
  return trees;
}

describe('shard ownership', () => {
  it('every shard has exactly one owner for any worker count and index', () => {
    for (let total = 0; total <= 40; total++) {
      for (let n = 1; n <= 13; n++) {
        const owners = new Array(total).fill(0);
        for (let i = 0; i < n; i++) {
          const mine = ownedShards(total, { index: i, count: n });
          for (const s of mine) { expect(ownsShard(s, { index: i, count: n })).toBe(true); owners[s]++; }
          expect(mine).toEqual([...mine].sort((a, b) => a - b));
        }
        expect(owners.every((c) => c === 1), `total ${total}, N ${n}`).toBe(true);
      }
    }
  });

  it('reads the flags, a Slurm array (min/step offsets, CFGEN_SHARD_COUNT) and a Kubernetes Indexed Job', () => {
    expect(shardAssignment({}, {})).toBeNull();
    expect(shardAssignment({ shardIndex: 2, shardCount: 3 }, {})).toMatchObject({ index: 2, count: 3 });
    expect(() => shardAssignment({ shardIndex: 3, shardCount: 3 }, {})).toThrow(/not below the shard count 3/);
    expect(() => shardAssignment({ shardIndex: 1 }, {})).toThrow(/--shard-index and --shard-count go together/);
    expect(shardAssignment({}, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '3' })).toMatchObject({ index: 2, count: 4 });
    expect(shardAssignment({}, { SLURM_ARRAY_TASK_ID: '6', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_STEP: '2' })).toMatchObject({ index: 3, count: 4 });
    // resubmitting one task of N keeps its shards: the count comes from CFGEN_SHARD_COUNT, the index is the task id
    expect(shardAssignment({}, { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '1', SLURM_ARRAY_TASK_MIN: '3', CFGEN_SHARD_COUNT: '4' })).toMatchObject({ index: 3, count: 4 });
    expect(shardAssignment({ shardCount: 8 }, { SLURM_ARRAY_TASK_ID: '7' })).toMatchObject({ index: 7, count: 8 });
    expect(shardAssignment({}, { JOB_COMPLETION_INDEX: '1', CFGEN_SHARD_COUNT: '3' })).toMatchObject({ index: 1, count: 3, from: 'JOB_COMPLETION_INDEX=1' });
    expect(() => shardAssignment({}, { JOB_COMPLETION_INDEX: '1' })).toThrow(/CFGEN_SHARD_COUNT/);
    expect(() => shardAssignment({}, { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '2' })).toThrow(/SLURM_ARRAY_TASK_ID: expected an integer/);
  });
});

describe('sharded generate', () => {
  it('N workers, one after the other or side by side, write the bytes and corpus ids of one process', async () => {
    const fx = await makeFixture(14);
    const ref = await reference(fx);

    // 3 workers in turn: only the last finalizes
    const src = await copySource(fx);
    const runs = [];
    for (const i of [2, 0, 1]) runs.push(await runGenerate(options(src, { shardIndex: i, shardCount: 3 })));
    expect(runs[0].methods.every((m) => m.corpusId === null && /shards done/.test(m.note ?? ''))).toBe(true);
    expect(runs[2].methods.map((m) => m.corpusId)).toEqual(ref.ids);
    expect(await treesOf(src)).toEqual(ref.trees);
    for (const m of METHODS) {
      const dir = join(src, '..', m);
      expect((await verifyCorpus(dir)).ok).toBe(true);
      expect((await readdir(join(dir, 'manifest'))).every((f) => f.endsWith('.arrow'))).toBe(true);
      // finalize again (the dependent Slurm job): a no-op with the same id
      const again = await finalizeCorpus(dir, { timing: TIMING, log: () => {} });
      expect(again.result).toMatchObject({ state: 'done', corpusId: ref.ids[METHODS.indexOf(m)] });
    }
    expect(await treesOf(src)).toEqual(ref.trees);

    // 2 workers at once (Slurm array env, task ids 4 and 5 of an array starting at 4)
    const src2 = await copySource(fx);
    const both = await Promise.all([4, 5].map((id) => runGenerate(options(src2, { env: { SLURM_ARRAY_TASK_ID: String(id), SLURM_ARRAY_TASK_COUNT: '2', SLURM_ARRAY_TASK_MIN: '4' } }))));
    expect(both.map((s) => s.sharding?.index).sort()).toEqual([0, 1]);
    expect(both.some((s) => s.methods.every((m, k) => m.corpusId === ref.ids[k]))).toBe(true);
    expect(await treesOf(src2)).toEqual(ref.trees);
  });

  it('a worker waits for a shard another holds, then finds it done or writes it; finalize waits for live claims', async () => {
    const fx = await makeFixture(8);
    const ref = await reference(fx);
    const src = await copySource(fx);
    const dir = (m: string) => join(src, '..', m);
    // another live worker holds shard 1 of cf-tile
    const other = await claimShard(dir('cf-tile'), 1, { wait: false, timing: TIMING, log: () => {}, name: 'cf-tile' });
    expect(other).not.toBeNull();
    let finished = false;
    const w = runGenerate(options(src, { shardIndex: 0, shardCount: 1 })).then((s) => { finished = true; return s; });
    // it writes everything else first, then waits for shard 1
    for (let t = 0; t < 400 && !(await exists(join(dir('cf-tile'), 'state', 'part-00003.done'))); t++) await sleep(25);
    await sleep(300);
    expect(finished).toBe(false);
    expect(await exists(join(dir('cf-tile'), 'state', 'part-00001.done'))).toBe(false);
    expect(await exists(join(dir('cf-random'), 'state', 'part-00001.done'))).toBe(true);
    // while a live claim is held, finalize refuses (a worker could still rewrite a part)
    const busy = await finalizeCorpus(dir('cf-tile'), { timing: TIMING, log: () => {}, waitMs: 0 });
    expect(busy.result.state).toBe('busy');
    await other!.release();
    const s = await w;
    expect(s.methods.map((m) => m.corpusId)).toEqual(ref.ids);
    expect(await treesOf(src)).toEqual(ref.trees);
  });

  it('takes over a claim left by a worker on another host once it has been silent for staleMs', async () => {
    const fx = await makeFixture(6);
    const ref = await reference(fx);
    const src = await copySource(fx);
    const claim = claimPath(join(src, '..', 'cf-random'), 0);
    await mkdir(join(claim, '..'), { recursive: true });
    await writeFile(claim, JSON.stringify({ pid: 1, hostname: `${hostname()}-node7`, started: '2020-01-01T00:00:00.000Z', token: 'gone' }));
    const old = new Date(Date.now() - 60_000);
    await utimes(claim, old, old);
    const lines: string[] = [];
    const s = await runGenerate(options(src, { shardIndex: 0, shardCount: 1, log: (l) => lines.push(l) }));
    expect(lines.join('\n')).toMatch(/took over the abandoned lock .*part-00000\.claim: pid 1 on .*-node7 .*has not refreshed it for \d+ s/);
    expect(s.methods.map((m) => m.corpusId)).toEqual(ref.ids);
    expect(await treesOf(src)).toEqual(ref.trees);
  });

  it('refuses what would mix or clobber: --force, other options, an unsharded run in progress, claims held during an unsharded run', async () => {
    const fx = await makeFixture(6);
    const src = await copySource(fx);
    await expect(runGenerate(options(src, { shardIndex: 0, shardCount: 2, force: true }))).rejects.toThrow(/--force cannot be given to a sharded worker/);
    await runGenerate(options(src, { shardIndex: 0, shardCount: 2 }));
    // worker 1 started with another seed: refused by the plan worker 0 recorded
    await expect(runGenerate(options(src, { shardIndex: 1, shardCount: 2, seed: 9 }))).rejects.toThrow(/being generated with another configuration[\s\S]*state\/plan\.json/);
    // an unsharded run refuses while a worker holds a claim, and a worker refuses while an unsharded run holds the lock
    const tile = join(src, '..', 'cf-tile');
    const held = await claimShard(tile, 1, { wait: false, timing: TIMING, log: () => {}, name: 'cf-tile' });
    await expect(runGenerate(options(src))).rejects.toThrow(/cf-tile corpus is being generated by sharded workers/);
    await held!.release();
    const lock = await acquireLock(join(tile, '.lock'), { purpose: 'cfgen generate (cf-tile)' });
    await expect(runGenerate(options(src, { shardIndex: 1, shardCount: 2 }))).rejects.toThrow(LockHeldError);
    await lock.release();
    // `finalize` names the missing shards and the tasks that own them
    const unfinished = await finalizeCorpus(tile, { timing: TIMING, log: () => {}, shardCount: 2 });
    expect(unfinished.result.state).toBe('incomplete');
    expect(unfinished.result.state === 'incomplete' && unfinished.result.why.join('\n')).toMatch(/shard 1: not written[\s\S]*worker\(s\) 1 of 2: resubmit them, e\.g\. sbatch --array=1/);
    const last = await runGenerate(options(src, { shardIndex: 1, shardCount: 2 }));
    expect(last.methods.every((m) => m.corpusId)).toBe(true);
    const c = await openCorpus(tile);
    let n = 0;
    for await (const _ of c.rows()) n++;
    expect(n).toBe(6);
    expect(JSON.parse(await readFile(join(tile, 'corpus.json'), 'utf8')).shard_hashes).toHaveLength(3);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exists = (p: string) => stat(p).then(() => true, () => false);
