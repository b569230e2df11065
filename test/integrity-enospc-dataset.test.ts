import { describe, it, expect, vi } from 'vitest';
import { readdir } from 'node:fs/promises';
import { datasetCommand } from '../pipeline/cli-dataset.ts';
import { environmentError } from '../common/env-errors.ts';
import { tempDir } from './fixtures/datasets.ts';

/**
 * Issue #12, defect 4 (dataset): the disk fills up while a synthetic dataset is built into its staging folder.
 * The user must see that ENOSPC, not the ENOTEMPTY of a cleanup that raced the writes still in flight, and no
 * staging folder may be left behind. The staging folder's writes go through fs/promises' writeFile: the n-th one
 * fails with ENOSPC at once while the others are slowed down, so several are in flight when it fails.
 */
const disk = vi.hoisted(() => ({ full: false, after: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const writeFile = (async (file: Parameters<typeof fs.writeFile>[0], ...rest: unknown[]) => {
    if (disk.full && typeof file === 'string' && /\.tmp-\d+-[0-9a-f]+\//.test(file)) {
      if (disk.after-- <= 0) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), { code: 'ENOSPC', errno: -28, syscall: 'write', path: file });
      await new Promise((r) => setTimeout(r, 40));
    }
    return (fs.writeFile as (...a: unknown[]) => Promise<void>)(file, ...rest);
  }) as typeof fs.writeFile;
  return { ...fs, default: { ...fs, writeFile }, writeFile };
});

describe('dataset on a full disk', () => {
  it('reports the ENOSPC itself (not a cleanup error) and leaves no staging folder or lock', async () => {
    const data = await tempDir();
    const corpora = await tempDir();
    disk.full = true;
    disk.after = 6;
    let err: unknown;
    try {
      await datasetCommand().parseAsync(['synth-waterbirds', '--data-root', data, '--corpora-root', corpora, '--size', '16', '--train', '24', '--val', '4', '--test', '4'], { from: 'user' });
    } catch (e) {
      err = e;
    } finally {
      disk.full = false;
    }
    expect((err as NodeJS.ErrnoException)?.code, String(err)).toBe('ENOSPC');
    expect(environmentError(err)?.message).toMatch(/^no space left on the device \(writing \/\S+synth-waterbirds\.tmp-\d+-[0-9a-f]+\/\S+\)\n {2}fix: free space/);
    expect(await readdir(data)).toEqual([]);
  });
});
