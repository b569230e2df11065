import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { withLock } from '../../common/lock.ts';
import { TOOL_VERSION, stableStringify } from '../../manifests/index.ts';
import { resolveSynthOptions, isSynthDataset, SYNTH_DATASETS, SYNTH_DEFAULTS, type SynthDataset, type SynthOptions } from './options.ts';
import { StagedDir, listStaging, removeStaleStaging } from './staging.ts';
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
    // the build's own error is what the user must see (ENOSPC, not the ENOTEMPTY of a failed cleanup); a staging
    // folder left behind is removed by the next build (removeStaleStaging)
    await out.abort().catch(() => {});
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
 * Build unless `dir` already holds this dataset with these options. Returns true when it built.
 * A lock file beside the dataset folder (`<dir>.lock`) makes two processes asking for the same dataset (e.g.
 * generate and train started together) build it once: the second waits, then finds it up to date. A lock whose
 * owner died is taken over. Under the lock, staging folders of builds that died are removed.
 */
export async function ensureSynthDataset(dataset: string, dir: string, options: SynthOptions, opts: { force?: boolean; progress?: SynthProgress; log?: (line: string) => void } = {}): Promise<boolean> {
  if (!isSynthDataset(dataset)) throw new Error(`not a synthetic dataset: ${dataset}`);
  const upToDate = async () => (await readFile(join(dir, SYNTH_MARKER), 'utf8').catch(() => null)) === marker(dataset, options);
  // an up-to-date build is used without writing anything (the data root may be read-only), unless there is litter
  if (!opts.force && (await upToDate()) && !(await listStaging(dir)).length) return false;
  const lock = `${dir.replace(/[\\/]+$/, '')}.lock`;
  await mkdir(dirname(lock), { recursive: true });
  return withLock(lock, { purpose: `cfgen: build ${dataset}`, what: `${dir} is being built`, wait: true, log: opts.log }, async () => {
    // every build of this folder holds the lock, so the staging folders found now belong to builds that died
    const removed = await removeStaleStaging(dir);
    if (removed.length) opts.log?.(`removed ${removed.length} staging folder(s) left by an interrupted build: ${removed.join(', ')}`);
    // someone else may have built it while we waited for the lock
    if (!opts.force && (await upToDate())) return false;
    await buildSynthDataset(dataset, dir, options, opts.progress);
    return true;
  });
}
