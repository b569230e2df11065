import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { withPath } from '../../manifests/io.ts';

/**
 * A dataset is written into a sibling staging folder and renamed into place at the end, so a reader never sees a
 * half-built dataset and a crash leaves only a `*.tmp-*` folder. (One rename per dataset instead of an fsync per file:
 * thousands of tiny images would otherwise spend most of their time in fsync.)
 */
export class StagedDir {
  private constructor(readonly finalDir: string, readonly dir: string) {}

  /** A fresh staging folder `<finalDir>.tmp-<pid>-<hex>` beside `finalDir`. */
  static async open(finalDir: string): Promise<StagedDir> {
    const dir = `${finalDir.replace(/[\\/]+$/, '')}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await mkdir(dir, { recursive: true });
    return new StagedDir(finalDir, dir);
  }

  private made = new Set<string>();

  /** Write one file, at `rel` inside the staging folder (folders are created as needed). */
  async write(rel: string, data: Uint8Array | string): Promise<void> {
    const file = join(this.dir, rel);
    const parent = dirname(file);
    if (!this.made.has(parent)) {
      await mkdir(parent, { recursive: true });
      this.made.add(parent);
    }
    try {
      await writeFile(file, data);
    } catch (e) {
      throw withPath(e, file);
    }
  }

  /** Replace `finalDir` with the staging folder (one rename). */
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

  /** Remove the staging folder (call it only once no write is in flight). */
  async abort(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The staging folders (`<finalDir>.tmp-<pid>-<hex>`) beside `finalDir`, by name. */
export async function listStaging(finalDir: string): Promise<string[]> {
  const clean = finalDir.replace(/[\\/]+$/, '');
  const prefix = `${basename(clean)}.tmp-`;
  let entries: string[];
  try {
    entries = await readdir(dirname(clean));
  } catch {
    return [];
  }
  return entries.filter((e) => e.startsWith(prefix) && /^\d+-[0-9a-f]+$/.test(e.slice(prefix.length))).sort();
}

/**
 * Remove the staging folders that builds of `finalDir` left behind when they died or failed. Only call it while
 * holding the build lock of `finalDir`: then no live build owns one. Returns the names removed; a folder that
 * cannot be removed is left for next time rather than failing the build.
 */
export async function removeStaleStaging(finalDir: string): Promise<string[]> {
  const parent = dirname(finalDir.replace(/[\\/]+$/, ''));
  const removed: string[] = [];
  for (const e of await listStaging(finalDir)) {
    try {
      await rm(join(parent, e), { recursive: true, force: true });
      removed.push(e);
    } catch { /* busy or not ours to remove: the next build tries again */ }
  }
  return removed;
}
