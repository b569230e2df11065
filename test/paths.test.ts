import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT, ROOT_NAMES, datasetRootOf, defaultRoot, recordedDatasetRoot, resolveRoot } from '../common/paths.ts';

const run = promisify(execFile);
const TSX = join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx');
const CLI = join(PROJECT_ROOT, 'cfgen.ts');
/** The environment without any root override, so the project defaults show. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^CFGEN_.*_ROOT$/.test(k)) delete env[k];
  return { ...env, ...extra };
}
/** `cfgen <args>` run from `cwd`, as a user in another folder would. */
async function cfgen(cwd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(TSX, [CLI, ...args], { cwd, env, maxBuffer: 16 << 20 });
  return r.stdout + r.stderr;
}
/** The `(default: …)` a --help text gives for `flag`, with commander's line wrapping undone. */
function helpDefault(help: string, flag: string): string | null {
  const flat = help.replace(/\s+/g, ' ');
  // up to the first "(default: …" before the next option
  const m = new RegExp(`${flag} <[^>]+> (?:(?! --[a-z]).)*?\\(default: ([^;)]+)`).exec(flat);
  return m ? m[1].trim() : null;
}

describe('common/paths: flag > environment > project folder', () => {
  it('defaults to the project folder, whatever the current folder', () => {
    const env = cleanEnv();
    for (const n of ROOT_NAMES) expect(defaultRoot(n, env)).toBe(join(PROJECT_ROOT, n));
  });

  it('an environment variable overrides the default and a flag overrides both; both are made absolute', () => {
    const env = cleanEnv({ CFGEN_CORPORA_ROOT: '/srv/corpora', CFGEN_RUNS_ROOT: 'rel/runs' });
    expect(defaultRoot('corpora', env)).toBe('/srv/corpora');
    expect(defaultRoot('runs', env)).toBe(join(process.cwd(), 'rel/runs'));
    expect(resolveRoot('corpora', '/elsewhere', env)).toBe('/elsewhere');
    expect(resolveRoot('corpora', undefined, env)).toBe('/srv/corpora');
    expect(resolveRoot('models', null, env)).toBe(join(PROJECT_ROOT, 'models'));
  });

  it('manifests record dataset roots inside the project relative to it (same bytes in every clone), others absolute', () => {
    expect(recordedDatasetRoot(join(PROJECT_ROOT, 'data', 'synth-waterbirds'))).toBe('data/synth-waterbirds');
    expect(recordedDatasetRoot('/mnt/datasets/waterbirds')).toBe('/mnt/datasets/waterbirds');
    expect(recordedDatasetRoot(join(PROJECT_ROOT, '..', 'sibling'))).toBe(join(PROJECT_ROOT, '..', 'sibling'));
    expect(datasetRootOf('data/synth-waterbirds')).toBe(join(PROJECT_ROOT, 'data', 'synth-waterbirds'));
    expect(datasetRootOf('/mnt/x')).toBe('/mnt/x');
  });

  it('every command run from another folder shows the same roots in --help: the project\'s, or the environment\'s', async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), 'cfgen-cwd-'));
    try {
      const cases: [string, string, 'corpora' | 'data' | 'runs'][] = [
        ['dataset', '--corpora-root', 'corpora'], ['dataset', '--data-root', 'data'],
        ['generate', '--corpora-root', 'corpora'], ['generate', '--data-root', 'data'],
        ['verify', '--corpora-root', 'corpora'], ['sample-grid', '--corpora-root', 'corpora'],
        ['inpainter', '--corpora-root', 'corpora'], ['train', '--corpora-root', 'corpora'], ['train', '--runs-root', 'runs'],
        ['eval', '--runs-root', 'runs'],
      ];
      const helps = new Map<string, { plain: string; env: string }>();
      const envRoots = { CFGEN_CORPORA_ROOT: '/srv/c', CFGEN_DATA_ROOT: '/srv/d', CFGEN_RUNS_ROOT: '/srv/r' };
      for (const cmd of new Set(cases.map((c) => c[0]))) {
        helps.set(cmd, {
          plain: await cfgen(elsewhere, [cmd, '--help'], cleanEnv()),
          env: await cfgen(elsewhere, [cmd, '--help'], cleanEnv(envRoots)),
        });
      }
      const fromEnv = { corpora: '/srv/c', data: '/srv/d', runs: '/srv/r' };
      for (const [cmd, flag, root] of cases) {
        expect(helpDefault(helps.get(cmd)!.plain, flag), `${cmd} ${flag}`).toBe(join(PROJECT_ROOT, root));
        expect(helpDefault(helps.get(cmd)!.env, flag), `${cmd} ${flag} with env`).toBe(fromEnv[root]);
      }
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('dataset, generate and verify run from three different folders agree on where data and corpora are', async () => {
    const base = await mkdtemp(join(tmpdir(), 'cfgen-roots-'));
    try {
      const env = cleanEnv({ CFGEN_DATA_ROOT: join(base, 'd'), CFGEN_CORPORA_ROOT: join(base, 'c') });
      const cwds = ['a', 'b', 'v'].map((x) => join(base, x));
      for (const c of cwds) await import('node:fs/promises').then((fs) => fs.mkdir(c));
      await cfgen(cwds[0], ['dataset', 'synth-waterbirds', '--size', '32', '--train', '12', '--val', '4', '--test', '4'], env);
      expect(existsSync(join(base, 'd', 'synth-waterbirds'))).toBe(true);
      expect(existsSync(join(base, 'c', 'synth-waterbirds', 'source'))).toBe(true);
      const gen = await cfgen(cwds[1], ['generate', '--dataset', 'synth-waterbirds', '--methods', 'cf-grey', '--quiet'], env);
      expect(gen).toMatch(/cf-grey +ok 12 /);
      expect(existsSync(join(base, 'c', 'synth-waterbirds', 'cf-grey', 'corpus.json'))).toBe(true);
      const ver = await cfgen(cwds[2], ['verify', '--dataset', 'synth-waterbirds'], env);
      expect(ver).toContain(`ok      ${join(base, 'c', 'synth-waterbirds', 'cf-grey')}: 12 files checked`);
      // Nothing was written relative to the folders the commands ran in.
      for (const c of cwds) expect(await readdir(c)).toEqual([]);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe('datasetSlug: one folder name for a dataset, in both halves', () => {
  it('keeps plain names and turns folder:<path> into folder-<name>', async () => {
    const { datasetSlug } = await import('../common/paths.ts');
    expect(datasetSlug('synth-waterbirds')).toBe('synth-waterbirds');
    expect(datasetSlug('folder:/data/my pets/')).toBe('folder-my_pets');
    expect(datasetSlug('folder:rel/ds')).toBe('folder-ds');
  });
});
