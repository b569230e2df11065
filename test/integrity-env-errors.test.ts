import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { EXIT_CODES, EnvironmentError, environmentError, exitOnError, type ErrorSink } from '../common/env-errors.ts';
import { ensureSynthDataset, resolveSynthOptions } from '../pipeline/synth/index.ts';
import { forEachLimit } from '../pipeline/synth/util.ts';
import { tempDir } from './fixtures/datasets.ts';
import { makeFixture } from './generate-fixture.ts';

/**
 * Issue #12, defect 4: environment errors (disk full, permissions, open-file limits, read-only file systems,
 * truncated files) become one paragraph naming the path and the fix, with exit status 3, never a raw stack
 * with status 1 (which means "error rate exceeded").
 */

const errno = (code: string, syscall: string, path: string) =>
  Object.assign(new Error(`${code}: something, ${syscall} '${path}'`), { code, syscall, path, errno: -1 });

/** Run exitOnError and return what it printed and the status it exited with. */
function handled(err: unknown): { text: string; code: number } {
  let text = '';
  const sink: ErrorSink = {
    write: (t) => { text += t; },
    exit: (c) => { throw Object.assign(new Error('exit'), { exitStatus: c }); },
  };
  try {
    exitOnError(err, sink);
  } catch (e) {
    if ((e as { exitStatus?: number }).exitStatus !== undefined) return { text, code: (e as { exitStatus: number }).exitStatus };
    throw e;
  }
  throw new Error('exitOnError returned');
}

describe('common/env-errors.ts', () => {
  it('turns each errno into one paragraph with the path (not the temp name) and the fix, exit status 3', () => {
    const tmp = '/data/corpora/toy/cf-tile/images/ab/img_1_v0.png.tmp-123-0abc1234';
    const cases: [string, RegExp][] = [
      ['ENOSPC', /^error: no space left on the device \(writing \/data\/corpora\/toy\/cf-tile\/images\/ab\/img_1_v0\.png\)\n  fix: free space on the disk that holds \/data\/corpora\/toy\/cf-tile\/images\/ab \(see `df -h \/data\/corpora\/toy\/cf-tile\/images\/ab`\)[^\n]*rerun the same command: it resumes where it stopped[^\n]*\n$/],
      ['EACCES', /^error: permission denied \(writing \/data\/[^\n]*\)\n  fix: check the owner and mode of [^\n]*--corpora-root[^\n]*\n$/],
      ['EPERM', /^error: operation not permitted \(writing [^\n]*\n  fix: [^\n]*\n$/],
      ['EMFILE', /^error: too many open files in this process \(writing [^\n]*\n  fix: raise the limit \(`ulimit -n 4096`[^\n]*fewer --workers[^\n]*\n$/],
      ['ENFILE', /^error: too many open files on this machine [^\n]*\n  fix: [^\n]*\n$/],
      ['EROFS', /^error: read-only file system \(writing [^\n]*\n  fix: write somewhere else[^\n]*\n$/],
    ];
    for (const [code, want] of cases) {
      const r = handled(errno(code, 'write', tmp));
      expect(r.code, code).toBe(EXIT_CODES.environment);
      expect(r.text, code).toMatch(want);
    }
    // wrapped (a cause chain), or copied across a worker thread as plain fields: still recognised
    expect(environmentError(new Error('shard failed', { cause: errno('ENOSPC', 'open', '/x/y') }))?.code).toBe('ENOSPC');
    expect(environmentError(new Error('nothing to do with the disk'))).toBeNull();
  });

  it('keeps usage errors at 2 and bugs as thrown errors', () => {
    expect(handled(new UserError('bad flag', { fix: 'use another' }))).toEqual({ text: 'error: bad flag\n  fix: use another\n', code: 2 });
    expect(handled(new EnvironmentError('held', { file: '/x/.lock' })).code).toBe(3);
    const bug = new TypeError('x is undefined');
    expect(() => handled(bug)).toThrow(bug);
  });
});

describe('the CLI', () => {
  it('reports a truncated source manifest as an environment error (exit 3, one paragraph, no stack)', async () => {
    const fx = await makeFixture(4);
    const part = join(fx.sourceDir, 'source-00000.arrow');
    const bytes = await readFile(part);
    await writeFile(part, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'cfgen.ts', 'generate', '--source', fx.sourceDir, '--methods', 'cf-grey', '--quiet'], { cwd: process.cwd(), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`^error: ${fx.sourceDir}(/source-00000\\.arrow)?: the file is truncated or corrupt \\([^\\n]+\\)\\n  fix: restore the source manifest folder given to --source, or rebuild it with \`npx tsx cfgen.ts dataset <name> --force\`\\n$`));
  });
});

describe('datasets: a failed build leaves its own error and no litter', () => {
  it('forEachLimit starts nothing after a failure, waits for the items in flight, and rejects with the first error', async () => {
    const started: number[] = [];
    let inFlight = 0, settledAfterReject = false;
    const p = forEachLimit([0, 1, 2, 3, 4, 5, 6, 7], async (i) => {
      started.push(i);
      inFlight++;
      try {
        if (i === 1) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
        await new Promise((r) => setTimeout(r, 60));
        if (i === 2) throw new Error('ENOTEMPTY: a consequence');
      } finally {
        inFlight--;
      }
    }, { concurrency: 4 });
    await expect(p).rejects.toMatchObject({ code: 'ENOSPC' });
    settledAfterReject = inFlight === 0;
    expect(settledAfterReject).toBe(true);
    expect(started).toEqual([0, 1, 2, 3]);
  });

  it('removes the staging folders of dead builds (under the dataset lock), with a log line', async () => {
    const data = await tempDir();
    const dir = join(data, 'synth-waterbirds');
    const stale = join(data, 'synth-waterbirds.tmp-999999-0badc0de');
    await mkdir(join(stale, '001.Black_footed_Albatross'), { recursive: true });
    await writeFile(join(stale, '001.Black_footed_Albatross', 'half.jpg'), 'x');
    await writeFile(join(data, 'synth-waterbirds.tmp-notes.txt'), 'not a staging folder');
    const lines: string[] = [];
    const opts = resolveSynthOptions('synth-waterbirds', { size: 16, train: 4, val: 4, test: 4 });
    expect(await ensureSynthDataset('synth-waterbirds', dir, opts, { log: (l) => lines.push(l) })).toBe(true);
    expect(lines).toContain('removed 1 staging folder(s) left by an interrupted build: synth-waterbirds.tmp-999999-0badc0de');
    expect((await readdir(data)).sort()).toEqual(['synth-waterbirds', 'synth-waterbirds.tmp-notes.txt']);

    // an up-to-date build with litter beside it: cleaned without a rebuild
    await mkdir(`${stale}x`.replace(/x$/, ''), { recursive: true });
    expect(await ensureSynthDataset('synth-waterbirds', dir, opts, { log: (l) => lines.push(l) })).toBe(false);
    expect((await readdir(data)).sort()).toEqual(['synth-waterbirds', 'synth-waterbirds.tmp-notes.txt']);
    expect((await stat(join(dir, 'synth.json'))).isFile()).toBe(true);
  });
});
