import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { join } from 'node:path';
import { TOOL_VERSION, stableStringify } from '../../manifests/index.ts';
import { resolveSynthOptions, isSynthDataset, SYNTH_DATASETS, SYNTH_DEFAULTS, type SynthDataset, type SynthOptions } from './options.ts';
import { StagedDir } from './staging.ts';
import { buildSynthWaterbirds } from './waterbirds.ts';
import { buildSynthIn9 } from './in9.ts';
import { buildSynthCct } from './cct.ts';
import type { SynthProgress } from './util.ts';

export { resolveSynthOptions, isSynthDataset, SYNTH_DATASETS, SYNTH_DEFAULTS };
export type { SynthDataset, SynthOptions, SynthProgress };

/** Written last into every synthetic dataset; a dataset whose marker matches is not rebuilt. */
export const SYNTH_MARKER = 'synth.json';
/** Bump when a generator changes its output for the same options. */
export const SYNTH_GENERATOR_VERSION = 1;

const BUILDERS: Record<SynthDataset, (out: StagedDir, o: SynthOptions, progress?: SynthProgress) => Promise<void>> = {
  'synth-waterbirds': buildSynthWaterbirds,
  'synth-in9': buildSynthIn9,
  'synth-cct': buildSynthCct,
};

function marker(dataset: SynthDataset, options: SynthOptions): string {
  return stableStringify({ dataset, options, generator_version: SYNTH_GENERATOR_VERSION, tool_version: TOOL_VERSION }, 2) + '\n';
}

/** Build the synthetic dataset into `dir` (replacing what is there), atomically. */
export async function buildSynthDataset(dataset: SynthDataset, dir: string, options: SynthOptions, progress?: SynthProgress): Promise<void> {
  const out = await StagedDir.open(dir);
  try {
    await BUILDERS[dataset](out, options, progress);
    await out.write(SYNTH_MARKER, marker(dataset, options));
    await out.commit();
  } catch (e) {
    await out.abort();
    throw e;
  }
}

/** The options of the synthetic dataset already in `dir` (null: none, or built by another generator version). */
export async function readSynthMarker(dataset: string, dir: string): Promise<SynthOptions | null> {
  if (!isSynthDataset(dataset)) return null;
  const text = await readFile(join(dir, SYNTH_MARKER), 'utf8').catch(() => null);
  if (!text) return null;
  try {
    const m = JSON.parse(text) as { dataset: string; options: SynthOptions };
    const options = resolveSynthOptions(dataset, m.options);
    return marker(dataset, options) === text ? options : null;
  } catch {
    return null;
  }
}

/**
 * A lock file beside the dataset folder, so that two processes asking for the same dataset (e.g. generate and train
 * started together) build it once: the second waits, then finds it up to date. A lock whose owner died is taken over.
 */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${dir.replace(/[\\/]+$/, '')}.lock`;
  await mkdir(dirname(lock), { recursive: true });
  for (;;) {
    try {
      const fh = await open(lock, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(await readFile(lock, 'utf8').catch(() => ''));
      let alive = true;
      if (owner > 0) {
        try { process.kill(owner, 0); } catch (k) { alive = (k as NodeJS.ErrnoException).code === 'EPERM'; }
      }
      if (owner > 0 && !alive) await rm(lock, { force: true });
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

/** Build unless `dir` already holds this dataset with these options. Returns true when it built. */
export async function ensureSynthDataset(dataset: string, dir: string, options: SynthOptions, opts: { force?: boolean; progress?: SynthProgress } = {}): Promise<boolean> {
  if (!isSynthDataset(dataset)) throw new Error(`not a synthetic dataset: ${dataset}`);
  const upToDate = async () => (await readFile(join(dir, SYNTH_MARKER), 'utf8').catch(() => null)) === marker(dataset, options);
  if (!opts.force && (await upToDate())) return false;
  return withLock(dir, async () => {
    // someone else may have built it while we waited for the lock
    if (!opts.force && (await upToDate())) return false;
    await buildSynthDataset(dataset, dir, options, opts.progress);
    return true;
  });
}
