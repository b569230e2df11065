import { readFile } from 'node:fs/promises';
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

/** Build unless `dir` already holds this dataset with these options. Returns true when it built. */
export async function ensureSynthDataset(dataset: string, dir: string, options: SynthOptions, opts: { force?: boolean; progress?: SynthProgress } = {}): Promise<boolean> {
  if (!isSynthDataset(dataset)) throw new Error(`not a synthetic dataset: ${dataset}`);
  if (!opts.force) {
    const have = await readFile(join(dir, SYNTH_MARKER), 'utf8').catch(() => null);
    if (have === marker(dataset, options)) return false;
  }
  await buildSynthDataset(dataset, dir, options, opts.progress);
  return true;
}
