import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile, open } from 'node:fs/promises';
import { dirname } from 'node:path';

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Write a file so that a reader never sees it half-written: temp file in the same folder, fsync, rename.
 * A crash leaves at most a `*.tmp-*` file, which no reader looks at.
 */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    let fh;
    try {
      fh = await open(tmp, 'w');
    } catch (e) {
      // the folder is made only when missing: a recursive mkdir before every write is one more round trip through
      // libuv's thread pool per file, which generate pays per image
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await mkdir(dirname(path), { recursive: true });
      fh = await open(tmp, 'w');
    }
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw withPath(err, path);
  }
}

/**
 * A failed write (ENOSPC, EDQUOT, EIO) from a file handle carries no path: add the file's, so the user's message can
 * say which disk is full.
 */
export function withPath(err: unknown, path: string): unknown {
  if (err && typeof err === 'object' && 'code' in err && !(err as { path?: unknown }).path) {
    try { (err as { path?: string }).path = path; } catch { /* frozen: leave it */ }
  }
  return err;
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, stableStringify(value, 2) + '\n');
}

/** JSON with object keys sorted, so the same value always gives the same bytes (and digest). */
export function stableStringify(value: unknown, indent?: number): string {
  return JSON.stringify(sortKeys(value), null, indent);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

export { writeFile };
