import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENERATE_DEFAULTS, createProgress, runGenerate } from '../pipeline/generate/index.ts';
import { verifyCorpus } from '../pipeline/verify.ts';
import { makeFixture, treeHashes, type Fixture } from './generate-fixture.ts';

/**
 * Issue #11: sharded workers as separate processes on one shared folder. A worker killed with SIGKILL and started
 * again (a requeued Slurm task) converges to the single-process corpus; two workers racing on the same shards never
 * corrupt one. Compared file by file with one `generate` of the same options.
 */

const METHODS = ['cf-random', 'cf-tile', 'f-shuffle'];

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cfgen.ts', ...args], {
    cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const done = new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })));
  return { child, done };
}

const exists = (p: string) => stat(p).then(() => true, () => false);

async function copySource(fx: Fixture, name: string): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), `${name}-`));
  const src = join(tmp, 'corpora', 'toy', 'source');
  await cp(fx.sourceDir, src, { recursive: true });
  return src;
}

async function referenceTrees(fx: Fixture): Promise<Record<string, Record<string, string>>> {
  const src = await copySource(fx, 'shard-ref');
  await runGenerate({
    ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir: src, methods: METHODS, shardSize: 2, variants: 2,
    env: {}, progress: createProgress({ quiet: true }), log: () => {},
  });
  const out: Record<string, Record<string, string>> = {};
  for (const m of METHODS) out[m] = await treeHashes(join(src, '..', m));
  return out;
}

describe('sharded workers as processes', () => {
  it('a worker killed with SIGKILL mid-shard and started again converges to the single-process corpus', async () => {
    const fx = await makeFixture(24);
    const ref = await referenceTrees(fx);
    const src = await copySource(fx, 'shard-kill');
    const base = join(src, '..');
    const args = (i: number) => ['generate', '--source', src, '--methods', METHODS.join(','), '--shard-size', '2', '--variants', '2', '--shard-index', String(i), '--shard-count', '2'];

    // worker 0 owns shards 0, 2, …, 10: kill it once its first shard is done and before its last
    const w0 = cli(args(0));
    let killed = false;
    for (let t = 0; t < 6000 && !killed; t++) {
      if (await exists(join(base, 'cf-random', 'state', 'part-00000.done'))) { w0.child.kill('SIGKILL'); killed = true; }
      else await new Promise((r) => setTimeout(r, 10));
    }
    const first = await w0.done;
    expect(killed && first.signal === 'SIGKILL', first.out).toBe(true);
    const doneAtKill = (await readdir(join(base, 'cf-random', 'state'))).filter((f) => f.endsWith('.done')).length;
    expect(doneAtKill).toBeLessThan(6);

    // worker 1 runs meanwhile; worker 0 is requeued (a new process, the dead one's claims are taken over)
    const [w1, again] = await Promise.all([cli(args(1)).done, cli(args(0)).done]);
    expect(w1.code, w1.out).toBe(0);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/resumed [1-9]/);
    for (const m of METHODS) {
      const dir = join(base, m);
      expect(await exists(join(dir, 'corpus.json')), `${m}\n${w1.out}\n${again.out}`).toBe(true);
      expect((await verifyCorpus(dir)).ok, m).toBe(true);
      const got = await treeHashes(dir);
      expect(Object.keys(got).filter((f) => /\.tmp-|\.claim|\.lock/.test(f)), m).toEqual([]);
      expect(got, m).toEqual(ref[m]);
    }
  });

  it('two workers racing on the same shards (both own every shard) write one uncorrupted corpus', async () => {
    const fx = await makeFixture(16);
    const ref = await referenceTrees(fx);
    const src = await copySource(fx, 'shard-race');
    const args = ['generate', '--source', src, '--methods', METHODS.join(','), '--shard-size', '2', '--variants', '2'];
    // the same task id twice, as a Slurm task that was requeued while the first attempt still ran
    const env = { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '1', SLURM_ARRAY_TASK_MIN: '0' };
    const [a, b] = await Promise.all([cli(args, env).done, cli(args, env).done]);
    expect(a.code, a.out).toBe(0);
    expect(b.code, b.out).toBe(0);
    expect(`${a.out}\n${b.out}`).toMatch(/id [0-9a-f]{16}/);
    for (const m of METHODS) {
      const dir = join(src, '..', m);
      expect((await verifyCorpus(dir)).ok, m).toBe(true);
      expect(await treeHashes(dir), m).toEqual(ref[m]);
    }
    // `cfgen finalize` afterwards (the dependent job) agrees
    const fin = await cli(['finalize', '--source', src, '--methods', METHODS.join(',')]).done;
    expect(fin.code, fin.out).toBe(0);
    expect(fin.out.match(/^ok {6}/gm)).toHaveLength(3);
  });
});
