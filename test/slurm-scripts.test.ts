import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATE_NODE_OPTIONS } from '../common/heap.ts';

/**
 * The job files users submit (scripts/slurm, scripts/k8s), checked without a cluster: submit.sh and the sbatch
 * template run against stand-ins for sbatch and npx that record what they were given. The real cluster run is
 * scripts/slurm/integration-test.sh (`make test-slurm`, run by CI after the suite).
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SLURM = join(ROOT, 'scripts', 'slurm');

/** A folder of stand-in commands: each appends its argv (one per line, then `--`) and chosen env vars to `log`. */
async function standIns(names: Record<string, string>): Promise<{ bin: string; log: string }> {
  const tmp = await mkdtemp(join(tmpdir(), 'slurm-stub-'));
  const bin = join(tmp, 'bin');
  await mkdir(bin);
  const log = join(tmp, 'calls.log');
  for (const [name, reply] of Object.entries(names)) {
    const file = join(bin, name);
    await writeFile(file, `#!/usr/bin/env bash
{ echo "$0"; printf '%s\\n' "$@"; echo "CFGEN_SHARD_COUNT=\${CFGEN_SHARD_COUNT:-} CFGEN_DIR=\${CFGEN_DIR:-} NODE_OPTIONS=\${NODE_OPTIONS:-} PWD=$PWD"; echo --; } >> ${JSON.stringify(log)}
${reply}
`);
    await chmod(file, 0o755);
  }
  return { bin, log };
}

const calls = async (log: string) => (await readFile(log, 'utf8')).split('--\n').filter(Boolean).map((c) => c.trimEnd().split('\n'));

describe('scripts/slurm', () => {
  it('every script parses (bash -n)', () => {
    for (const f of ['local-cluster.sh', 'submit.sh', 'integration-test.sh', 'generate.sbatch', 'finalize.sbatch']) {
      const r = spawnSync('bash', ['-n', join(SLURM, f)], { encoding: 'utf8' });
      expect(r.status, `${f}: ${r.stderr}`).toBe(0);
    }
  });

  it('submit.sh queues an N-task array and a finalize job after it, with the options each needs', async () => {
    // sbatch --parsable prints "<id>" or "<id>;<cluster>"
    const { bin, log } = await standIns({ sbatch: 'if [[ " $* " == *" --array="* ]]; then echo "101;cluster"; else echo 102; fi' });
    const r = spawnSync(join(SLURM, 'submit.sh'), ['4', '--partition=cpu', '--time', '1:00:00', '--',
      '--dataset', 'waterbirds', '--methods=cf-tile,f-random', '--variants', '2', '--corpora-root', '/shared/corpora'],
    { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, CFGEN_DIR: '' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').pop()).toBe('array=101 finalize=102');
    const [array, fin] = await calls(log);
    expect(array.slice(1, -1)).toEqual(['--parsable', '--array=0-3', '--export=ALL', '--partition=cpu', '--time', '1:00:00', join(SLURM, 'generate.sbatch'),
      '--dataset', 'waterbirds', '--methods=cf-tile,f-random', '--variants', '2', '--corpora-root', '/shared/corpora']);
    expect(array.at(-1)).toContain(`CFGEN_SHARD_COUNT=4 CFGEN_DIR=${ROOT}`);
    expect(fin.slice(1, -1)).toEqual(['--parsable', '--dependency=afterany:101', '--kill-on-invalid-dep=yes', '--export=ALL', '--partition=cpu', '--time', '1:00:00',
      join(SLURM, 'finalize.sbatch'), '--dataset', 'waterbirds', '--methods=cf-tile,f-random', '--corpora-root', '/shared/corpora']);
    const bad = spawnSync(join(SLURM, 'submit.sh'), ['0', '--', '--dataset', 'x'], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/N must be a positive integer/);
  });

  it('generate.sbatch runs `cfgen generate` in CFGEN_DIR with the job\'s options and a thread per allotted CPU', async () => {
    const { bin, log } = await standIns({ npx: 'exit 0' });
    const r = spawnSync('bash', [join(SLURM, 'generate.sbatch'), '--dataset', 'synth-waterbirds', '--methods', 'cf-grey'], {
      encoding: 'utf8', cwd: tmpdir(),
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, CFGEN_DIR: ROOT, SLURM_ARRAY_TASK_ID: '2', SLURM_CPUS_PER_TASK: '3', CFGEN_SHARD_COUNT: '4', NODE_OPTIONS: '--trace-warnings' },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cfgen generate: task 2 of array/);
    const [call] = await calls(log);
    expect(call.slice(1, -1)).toEqual(['--no-install', 'tsx', 'cfgen.ts', 'generate', '--workers', '3', '--quiet', '--dataset', 'synth-waterbirds', '--methods', 'cf-grey']);
    expect(call.at(-1)).toContain(`PWD=${ROOT}`);
    // generate's node options come first, the user's own are kept
    expect(call.at(-1)).toContain(`NODE_OPTIONS=${GENERATE_NODE_OPTIONS} --trace-warnings`);
    // the header documents every variable the job reads
    const text = await readFile(join(SLURM, 'generate.sbatch'), 'utf8');
    for (const v of ['CFGEN_SHARD_COUNT', 'CFGEN_DIR', 'CFGEN_CORPORA_ROOT', 'CFGEN_DATA_ROOT', 'CFGEN_WORKERS', 'CFGEN_CLAIM_STALE_S', 'SLURM_ARRAY_TASK_MIN']) expect(text).toContain(v);
    expect(text).toMatch(/^#SBATCH --requeue$/m);
  });

  it('integration-test.sh says plainly when it cannot start a cluster, and exits 3 (CI reports it, does not fail on it)', async () => {
    // a PATH with the basic tools and no Slurm or munge
    const tmp = await mkdtemp(join(tmpdir(), 'noslurm-'));
    const bin = join(tmp, 'bin');
    await mkdir(bin);
    for (const t of ['bash', 'id', 'dirname', 'realpath', 'mktemp', 'mkdir', 'cat', 'tail', 'rm', 'seq', 'sleep', 'date', 'env']) {
      const found = spawnSync('bash', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
      if (found) await symlink(found, join(bin, t));
    }
    const r = spawnSync(join(bin, 'bash'), [join(SLURM, 'integration-test.sh'), join(tmp, 'state')], { encoding: 'utf8', env: { PATH: bin, HOME: tmp } });
    expect(r.status, r.stdout + r.stderr).toBe(3);
    expect(r.stdout.trim().split('\n').pop()).toMatch(/^slurm integration: could not start the cluster: (needs root|munged not found)/);
  });
});

describe('Makefile', () => {
  it('make generate and make bench-generate run with generate\'s node options, keeping the user\'s', () => {
    for (const target of ['generate', 'bench-generate']) {
      const r = spawnSync('make', ['-n', target], { encoding: 'utf8', cwd: ROOT });
      expect(r.status, r.stderr).toBe(0);
      const line = r.stdout.split('\n').find((l) => /tsx (cfgen\.ts generate|bench\/generate\.ts)/.test(l))!;
      expect(line).toContain(`NODE_OPTIONS="${GENERATE_NODE_OPTIONS} \${NODE_OPTIONS:-}"`);
    }
  });
});

describe('scripts/k8s', () => {
  it('the Indexed Job gives every pod the shard count equal to its completions', async () => {
    const text = await readFile(join(ROOT, 'scripts', 'k8s', 'generate-job.yaml'), 'utf8');
    expect(text).toMatch(/^\s+completionMode: Indexed$/m);
    const completions = /^\s+completions: (\d+)/m.exec(text)![1];
    const count = /name: CFGEN_SHARD_COUNT\n\s+value: "(\d+)"/.exec(text)![1];
    expect(count).toBe(completions);
    expect(/^\s+parallelism: (\d+)/m.exec(text)![1]).toBe(completions);
    expect(/name: NODE_OPTIONS\n\s+value: (\S+)/.exec(text)![1]).toBe(GENERATE_NODE_OPTIONS);
    const fin = await readFile(join(ROOT, 'scripts', 'k8s', 'finalize-job.yaml'), 'utf8');
    expect(/CFGEN_SHARD_COUNT, value: "(\d+)"/.exec(fin)![1]).toBe(completions);
  });
});
