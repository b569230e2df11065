import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';

/**
 * The sub-folders of a dataset's corpora folder `base`, sorted by name, that hold the file `marker(folder)` (e.g. a
 * corpus.json, or a sharded run's plan). `skip` leaves names out before anything is read. A missing `base` is a
 * UserError whose fix is `fix`. The one listing behind `verify`, `finalize`, `sample-grid` and `export`.
 */
export async function foldersHolding(base: string, marker: (folder: string) => string, opts: { fix: string; skip?: (name: string) => boolean }): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(base)).sort();
  } catch {
    throw new UserError('no corpora here', { file: base, fix: opts.fix });
  }
  const out: string[] = [];
  for (const n of names) {
    if (opts.skip?.(n)) continue;
    try { if ((await stat(marker(join(base, n)))).isFile()) out.push(n); } catch { /* not one of them */ }
  }
  return out;
}

/** Corpus folders: those holding a corpus.json. */
export function corporaIn(base: string, skip?: (name: string) => boolean): Promise<string[]> {
  return foldersHolding(base, (dir) => join(dir, 'corpus.json'), { fix: 'run `make generate` first', skip });
}
