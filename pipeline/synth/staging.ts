import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * A dataset is written into a sibling staging folder and renamed into place at the end, so a reader never sees a
 * half-built dataset and a crash leaves only a `*.tmp-*` folder. (One rename per dataset instead of an fsync per file:
 * thousands of tiny images would otherwise spend most of their time in fsync.)
 */
export class StagedDir {
  private constructor(readonly finalDir: string, readonly dir: string) {}

  static async open(finalDir: string): Promise<StagedDir> {
    const dir = `${finalDir.replace(/[\\/]+$/, '')}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await mkdir(dir, { recursive: true });
    return new StagedDir(finalDir, dir);
  }

  private made = new Set<string>();

  async write(rel: string, data: Uint8Array | string): Promise<void> {
    const file = join(this.dir, rel);
    const parent = dirname(file);
    if (!this.made.has(parent)) {
      await mkdir(parent, { recursive: true });
      this.made.add(parent);
    }
    await writeFile(file, data);
  }

  async commit(): Promise<void> {
    await mkdir(dirname(this.finalDir), { recursive: true });
    // Two processes may build the same dataset at once (same options → same bytes): whoever renames last wins,
    // the other's rm/rename race is retried rather than failing.
    for (let attempt = 0; ; attempt++) {
      await rm(this.finalDir, { recursive: true, force: true });
      try {
        await rename(this.dir, this.finalDir);
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (attempt >= 4 || (code !== 'ENOTEMPTY' && code !== 'EEXIST')) throw e;
      }
    }
  }

  async abort(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
