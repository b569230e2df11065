import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GENERATE_DEFAULTS, runGenerate, createProgress } from '../pipeline/generate/index.ts';
import { makeFixture, treeHashes } from './generate-fixture.ts';

const METHODS = ['cf-random', 'cf-tile', 'f-shuffle'];

function cli(args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', 'cfgen.ts', 'generate', ...args], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
}

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('kill -9 mid-run, then rerun', () => {
  it('gives byte-identical corpora (images, manifests, markers, corpus.json) to an uninterrupted run', async () => {
    const fx = await makeFixture(24);
    const base = join(fx.sourceDir, '..');
    const args = ['--source', fx.sourceDir, '--methods', METHODS.join(','), '--shard-size', '2', '--quiet'];

    const child = cli(args);
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let killedMidRun = false;
    for (let t = 0; t < 3000; t++) {
      const firstDone = await Promise.all(METHODS.map((m) => exists(join(base, m, 'state', 'part-00000.done'))));
      if (firstDone.some(Boolean)) {
        child.kill('SIGKILL');
        killedMidRun = !(await Promise.all(METHODS.map((m) => exists(join(base, m, 'corpus.json'))))).every(Boolean);
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await exited;
    expect(killedMidRun, `the run finished before it could be killed; stderr: ${stderr}`).toBe(true);
    const doneAtKill = (await Promise.all(METHODS.map(async (m) => (await readdir(join(base, m, 'state')).catch(() => [])).filter((f) => f.endsWith('.done')).length)));
    expect(doneAtKill.reduce((a, b) => a + b, 0)).toBeLessThan(3 * 12);

    const rerun = cli(args);
    let out = '';
    rerun.stdout.on('data', (d) => { out += d; });
    rerun.stderr.on('data', (d) => { out += d; });
    const code = await new Promise<number | null>((resolve) => rerun.on('exit', resolve));
    expect(code, out).toBe(0);
    expect(out).toMatch(/resumed [1-9]/);

    const cleanTmp = await mkdtemp(join(tmpdir(), 'genclean-'));
    const cleanSource = join(cleanTmp, 'corpora', 'toy', 'source');
    await cp(fx.sourceDir, cleanSource, { recursive: true });
    await runGenerate({
      ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir: cleanSource, methods: METHODS, shardSize: 2,
      progress: createProgress({ quiet: true }), log: () => {},
    });
    for (const m of METHODS) {
      const got = await treeHashes(join(base, m));
      expect(Object.keys(got).some((f) => f.includes('.tmp-'))).toBe(false);
      expect(got, m).toEqual(await treeHashes(join(cleanTmp, 'corpora', 'toy', m)));
    }
  });
});
