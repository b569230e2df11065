import { describe, it, expect, vi } from 'vitest';
import { cp, mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { environmentError, exitOnError, type ErrorSink } from '../common/env-errors.ts';
import { GENERATE_DEFAULTS, runGenerate, createProgress, type GenerateOptions } from '../pipeline/generate/index.ts';
import { generateCommand } from '../pipeline/cli-generate.ts';
import { verifyCorpus } from '../pipeline/verify.ts';
import { makeFixture, treeHashes } from './generate-fixture.ts';

/**
 * Issue #12, defect 4 (generate): the disk fills up mid-run. Injected at the one place every output goes through,
 * writeFileAtomic: after `after` more writes, each write fails with ENOSPC as Node reports it (code, syscall, path).
 */
const disk = vi.hoisted(() => ({ full: false, after: 0 }));
vi.mock('../manifests/io.ts', async (importOriginal) => {
  const io = await importOriginal<typeof import('../manifests/io.ts')>();
  const writeFileAtomic: typeof io.writeFileAtomic = async (path, data) => {
    if (disk.full && disk.after-- <= 0) {
      throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}.tmp-1-00c0ffee'`), {
        code: 'ENOSPC', errno: -28, syscall: 'write', path: `${path}.tmp-1-00c0ffee`,
      });
    }
    return io.writeFileAtomic(path, data);
  };
  return { ...io, writeFileAtomic };
});

const options = (sourceDir: string, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir, shardSize: 2, methods: ['cf-tile', 'f-random'],
  progress: createProgress({ quiet: true }), log: () => {}, ...extra,
});

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('generate on a full disk', () => {
  it('stops with an environment error naming the file (exit 3 from the CLI), releases its locks, and a rerun finishes byte-identical', async () => {
    const fx = await makeFixture(8);
    const base = join(fx.sourceDir, '..');
    disk.full = true;
    disk.after = 9;
    let err: unknown;
    try {
      await runGenerate(options(fx.sourceDir));
    } catch (e) {
      err = e;
    } finally {
      disk.full = false;
    }
    expect((err as NodeJS.ErrnoException)?.code, String(err)).toBe('ENOSPC');
    const env = environmentError(err);
    expect(env?.exitCode).toBe(3);
    expect(env?.message).toMatch(new RegExp(`^no space left on the device \\(writing ${base}/(cf-tile|f-random)/\\S+\\)\\n  fix: free space on the disk that holds `));
    for (const m of ['cf-tile', 'f-random']) expect(await exists(join(base, m, '.lock')), m).toBe(false);

    // the same failure through the command, as cfgen.ts's handler prints it
    const fx2 = await makeFixture(4);
    disk.full = true;
    disk.after = 0;
    let text = '', status = -1;
    const sink: ErrorSink = { write: (t) => { text += t; }, exit: (c) => { status = c; throw new Error('exited'); } };
    try {
      await generateCommand().parseAsync(['--source', fx2.sourceDir, '--methods', 'cf-grey', '--quiet'], { from: 'user' });
    } catch (e) {
      try { exitOnError(e, sink); } catch { /* the sink's exit */ }
    } finally {
      disk.full = false;
    }
    expect(status).toBe(3);
    expect(text).toMatch(/^error: no space left on the device \(writing \/\S+\/cf-grey\/\S+\)\n  fix: [^\n]+rerun the same command: it resumes where it stopped[^\n]+\n$/);

    // space freed: the rerun resumes and ends with the bytes of a run that never failed
    const s = await runGenerate(options(fx.sourceDir));
    expect(s.exitCode).toBe(0);
    const cleanTmp = await mkdtemp(join(tmpdir(), 'enospc-clean-'));
    const cleanSource = join(cleanTmp, 'corpora', 'toy', 'source');
    await cp(fx.sourceDir, cleanSource, { recursive: true });
    await runGenerate(options(cleanSource));
    for (const m of ['cf-tile', 'f-random']) {
      expect((await verifyCorpus(join(base, m))).ok, m).toBe(true);
      expect(await treeHashes(join(base, m)), m).toEqual(await treeHashes(join(cleanTmp, 'corpora', 'toy', m)));
      expect((await readdir(join(base, m))).includes('.lock'), m).toBe(false);
    }
  });
});
