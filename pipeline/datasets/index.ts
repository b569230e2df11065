import { basename, isAbsolute, join, normalize, resolve } from 'node:path';
import {
  MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, TOOL_VERSION, openManifest, stableStringify, type ManifestMetadata, type SourceRow,
} from '../../manifests/index.ts';
import { UserError } from '../../manifests/errors.ts';
import { ensureSynthDataset, isSynthDataset, readSynthMarker, resolveSynthOptions, type SynthOptions } from '../synth/index.ts';
import { isDir, isFile, summarizeRows, writeSourceManifest, type AdapterOptions, type AdapterResult, type Progress } from './common.ts';
import { readWaterbirds, waterbirdsFingerprint } from './waterbirds.ts';
import { readIn9, in9Fingerprint } from './in9.ts';
import { readCct, cctAnnotationFile, cctFingerprint } from './cct.ts';
import { readFolder, folderFingerprint } from './folder.ts';
import { datasetSlug, defaultRoot, recordedDatasetRoot } from '../../common/paths.ts';

export { datasetSlug };
import { DEFAULT_MAX_PIXELS } from '../decode.ts';
import { canonicalMaskValues } from '../../manifests/masks.ts';
import { withLock } from '../../common/lock.ts';

export { readWaterbirds, readIn9, readCct, readFolder, summarizeRows };
export type { AdapterResult, AdapterOptions };

export type AdapterName = 'waterbirds' | 'in9' | 'cct' | 'folder';

export const ADAPTERS: Record<AdapterName, (root: string, opts: AdapterOptions) => Promise<AdapterResult>> = {
  waterbirds: readWaterbirds,
  in9: readIn9,
  cct: readCct,
  folder: readFolder,
};

/** Cheap content fingerprints (file listing + index-file hashes): equal fingerprint, equal manifest. */
export const FINGERPRINTS: Record<AdapterName, (root: string, opts?: { followSymlinks?: boolean }) => Promise<string>> = {
  waterbirds: waterbirdsFingerprint,
  in9: in9Fingerprint,
  cct: cctFingerprint,
  folder: folderFingerprint,
};

/** Where to find each real dataset, and the file that proves it is there. */
const REAL: Record<'waterbirds' | 'in9' | 'cct', { adapter: AdapterName; releaseFolder: string; mustExist: string; getIt: string }> = {
  waterbirds: {
    adapter: 'waterbirds',
    releaseFolder: 'waterbird_complete95_forest2water2',
    mustExist: 'metadata.csv',
    getIt: 'the Waterbirds release of Sagawa et al. (github.com/kohpangwei/group_DRO: the CUB + Places tarball waterbird_complete95_forest2water2.tar.gz), plus the CUB-200-2011 segmentations copied to <root>/segmentations/',
  },
  in9: {
    adapter: 'in9',
    releaseFolder: 'bg_challenge',
    mustExist: 'train/original/train',
    getIt: 'github.com/MadryLab/backgrounds_challenge release backgrounds_challenge_data.tar.gz (its folders go under <root>/test/) plus the IN-9 training folders original/ and no_fg/ under <root>/train/',
  },
  cct: {
    adapter: 'cct',
    releaseFolder: 'cct',
    mustExist: cctAnnotationFile('train'),
    getIt: "lila.science, Caltech Camera Traps, the ECCV'18 split: eccv_18_annotation_files.tar.gz and eccv_18_all_images_sm.tar.gz",
  },
};

export interface EnsureOptions {
  /** folder holding the dataset folders (default: defaultRoot('data'), read at call time): dataset X is read from <dataRoot>/X/ */
  dataRoot?: string;
  /** folder holding the manifests/corpora (default: defaultRoot('corpora'), read at call time): the source manifest goes to <corporaRoot>/<slug>/source/ */
  corporaRoot?: string;
  /**
   * dataset seed (synthetic data; IN-9's carved val split). Left out together with every `synth` knob, an existing
   * build is reused as it is (so `cfgen dataset synth-x --train 40` followed by a plain call keeps the small build).
   */
  seed?: number;
  /** rebuild the synthetic data and the manifest even when they are up to date */
  force?: boolean;
  synth?: Partial<SynthOptions>;
  progress?: Progress;
  /** called with a one-line note when a stage is skipped or rebuilt */
  log?: (line: string) => void;
  /** images (and masks) with more pixels become error rows, checked from the header (default DEFAULT_MAX_PIXELS) */
  maxPixels?: number;
  /** folder datasets: read files whose real path lies outside the dataset root (symbolic links); default: error rows */
  followSymlinks?: boolean;
  /**
   * folder: and waterbirds PNG masks: the pixel values that are the object, e.g. "1,3" (trimaps) or "1-20" (label
   * maps); default: every nonzero pixel. Recorded in each row's mask_format and in the manifest config.
   */
  maskForeground?: string;
}

export interface EnsuredManifest {
  /** the source manifest folder */
  dir: string;
  /** the dataset root as given (relative to cwd unless given absolute); row paths are relative to it */
  root: string;
  metadata: ManifestMetadata;
  /** true when this call (re)wrote the manifest */
  rebuilt: boolean;
  /** only when rebuilt: the rows that were written */
  rows?: SourceRow[];
}

export function sourceManifestDir(dataset: string, corporaRoot: string = defaultRoot('corpora')): string {
  return join(corporaRoot, datasetSlug(dataset), 'source');
}

export const KNOWN_DATASETS = ['waterbirds', 'in9', 'cct', 'folder:<path>', 'synth-waterbirds', 'synth-in9', 'synth-cct'];

/** Resolve a dataset name to its adapter and root (checking the real data is there). */
async function locate(dataset: string, dataRoot: string): Promise<{ adapter: AdapterName; root: string }> {
  if (dataset.startsWith('folder:')) {
    const root = normalize(dataset.slice('folder:'.length));
    if (!root || !(await isDir(root))) {
      throw new UserError(`folder dataset "${root}" not found`, { file: root, fix: 'give folder:<path to a folder with <split>/<class>/<image>>' });
    }
    return { adapter: 'folder', root };
  }
  if (isSynthDataset(dataset)) {
    const real = dataset.slice('synth-'.length) as keyof typeof REAL;
    return { adapter: REAL[real].adapter, root: join(dataRoot, dataset) };
  }
  const spec = REAL[dataset as keyof typeof REAL];
  if (!spec) {
    throw new UserError(`unknown dataset "${dataset}"`, { fix: `use one of: ${KNOWN_DATASETS.join(', ')}` });
  }
  const base = join(dataRoot, dataset);
  // The release tarballs unpack into a folder of their own; accept it one level down.
  for (const root of [base, join(base, spec.releaseFolder)]) {
    if ((await isFile(join(root, spec.mustExist))) || (await isDir(join(root, spec.mustExist)))) return { adapter: spec.adapter, root };
  }
  throw new UserError(`the ${dataset} dataset is not at ${base}/ (no ${join(base, spec.mustExist)}, nor under ${join(base, spec.releaseFolder)}/)`, {
    file: base,
    fix: `download ${spec.getIt}; unpack it so that ${join(base, spec.mustExist)} exists (or point --data-root at the folder that holds ${dataset}/). Offline? use synth-${dataset}.`,
  });
}

async function existingMetadata(dir: string): Promise<ManifestMetadata | null> {
  try {
    return (await openManifest(dir, { prefix: 'source' })).metadata;
  } catch {
    return null;
  }
}

/**
 * Make sure `<corporaRoot>/<slug>/source/` holds the source manifest of `dataset`, building the synthetic dataset
 * first for synth-* names. Skips the work when the manifest exists and was made by the same config (which includes
 * a fingerprint of the dataset's index files / listing, so edited data triggers a rebuild).
 */
export async function ensureSourceManifest(dataset: string, opts: EnsureOptions = {}): Promise<EnsuredManifest> {
  const dataRoot = opts.dataRoot ?? defaultRoot('data');
  const corporaRoot = opts.corporaRoot ?? defaultRoot('corpora');
  const log = opts.log ?? (() => {});
  const dir = sourceManifestDir(dataset, corporaRoot);
  let seed = opts.seed;
  let synth: SynthOptions | undefined;
  if (isSynthDataset(dataset)) {
    const explicit = seed !== undefined || Object.values(opts.synth ?? {}).some((v) => v !== undefined);
    const existing = explicit || opts.force ? null : await readSynthMarker(dataset, join(dataRoot, dataset));
    synth = existing ?? resolveSynthOptions(dataset, { seed: seed ?? 0, ...opts.synth });
    seed = synth.seed;
    const built = await ensureSynthDataset(dataset, join(dataRoot, dataset), synth, { force: opts.force, progress: opts.progress, log });
    log(built ? `built ${dataset} in ${join(dataRoot, dataset)}` : `${dataset} is up to date in ${join(dataRoot, dataset)}`);
  }
  const { adapter, root } = await locate(dataset, dataRoot);
  let maskForeground: string | undefined;
  if (opts.maskForeground !== undefined) {
    if (adapter !== 'folder' && adapter !== 'waterbirds') {
      throw new UserError(`--mask-foreground applies to the PNG segmentation masks of folder: and waterbirds datasets, not to ${dataset}`, { fix: 'leave --mask-foreground out' });
    }
    maskForeground = canonicalMaskValues(opts.maskForeground);
  }
  const plan: Plan = { dataset, dir, adapter, root, seedIn: seed, synth, opts, log, maskForeground };
  // an up-to-date manifest is used without writing anything (the corpora root may be read-only)
  if (!opts.force) {
    const fresh = await upToDate(plan);
    if (fresh) return fresh;
  }
  // two commands asking for the same dataset at once (generate and train, two generates) would otherwise both
  // rewrite the manifest, each removing the other's shards; the second waits, then finds it up to date
  return withLock(join(dir, '.lock'), { purpose: `cfgen dataset ${dataset}`, what: `the source manifest of ${dataset} is being written`, wait: true, log },
    async () => (!opts.force && (await upToDate(plan))) || rebuild(plan));
}

/** What ensureSourceManifest settled before comparing and (re)writing the manifest. */
interface Plan {
  dataset: string;
  dir: string;
  adapter: AdapterName;
  root: string;
  /** the seed asked for; undefined: the existing manifest's, else 0 */
  seedIn: number | undefined;
  /**
   * the declared mask values asked for, canonical (canonicalMaskValues); undefined: the existing manifest's (as for
   * the seed, so a later `generate` or `train` without the flag keeps the declaration), else none
   */
  maskForeground: string | undefined;
  synth: SynthOptions | undefined;
  opts: EnsureOptions;
  log: (line: string) => void;
}

/** The options that change rows, recorded only when not the default, so existing manifests (and every corpus id
 *  hashed from their bytes) stay as they were. */
function rowOptions(p: Plan, maskForeground: string | undefined): Record<string, unknown> {
  const maxPixels = p.opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  return {
    ...(maxPixels !== DEFAULT_MAX_PIXELS ? { max_pixels: maxPixels } : {}),
    ...(p.opts.followSymlinks && p.adapter === 'folder' ? { follow_symlinks: true } : {}),
    ...(maskForeground ? { mask_foreground: maskForeground } : {}),
  };
}

/** The mask values in force: the ones asked for, else those the existing manifest declared (see Plan). */
function maskForegroundOf(p: Plan, old: ManifestMetadata | null): string | undefined {
  const recorded = old?.config.mask_foreground;
  return p.maskForeground ?? (typeof recorded === 'string' ? recorded : undefined);
}

/** What decides the manifest's content; compared before reading any image. */
const identity = (m: { dataset: string; seed: number; tool_version: string; config: Record<string, unknown> }) => stableStringify({
  dataset: m.dataset, seed: m.seed, tool_version: m.tool_version,
  adapter: m.config.adapter, root: m.config.root, fingerprint: m.config.fingerprint, synth: m.config.synth,
  max_pixels: m.config.max_pixels, follow_symlinks: m.config.follow_symlinks, mask_foreground: m.config.mask_foreground,
});

/** The existing manifest when it was made from this data with these options, else null. */
async function upToDate(p: Plan): Promise<EnsuredManifest | null> {
  const old = await existingMetadata(p.dir);
  if (!old) return null;
  const seed = p.seedIn ?? old.seed ?? 0;
  const fingerprint = await FINGERPRINTS[p.adapter](resolve(p.root), { followSymlinks: !!p.opts.followSymlinks });
  // Recorded project-relative when inside the project: the manifest bytes (and every corpus id) match across clones.
  const now = { dataset: p.dataset, seed, tool_version: TOOL_VERSION, config: { adapter: p.adapter, root: recordedDatasetRoot(p.root), fingerprint, synth: p.synth, ...rowOptions(p, maskForegroundOf(p, old)) } };
  if (identity(old) !== identity(now)) return null;
  p.log(`source manifest ${p.dir} is up to date`);
  return { dir: p.dir, root: resolve(p.root), metadata: old, rebuilt: false };
}

/** Ingest the dataset and write its source manifest (under the source manifest's lock). */
async function rebuild(p: Plan): Promise<EnsuredManifest> {
  const { dataset, dir, adapter, root, synth, opts, log } = p;
  const old = opts.force ? null : await existingMetadata(dir);
  const seed = p.seedIn ?? old?.seed ?? 0;
  const rootAsGiven = recordedDatasetRoot(root);
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maskForeground = maskForegroundOf(p, old);
  const result = await ADAPTERS[adapter](resolve(root), { seed, progress: opts.progress, maxPixels, followSymlinks: !!opts.followSymlinks, maskForeground });
  for (const w of result.warnings ?? []) log(`warning: ${w}`);
  const config: Record<string, unknown> = { adapter, root: rootAsGiven, ...result.config, ...(synth ? { synth } : {}), ...rowOptions(p, maskForeground) };
  const metadata: ManifestMetadata = {
    format: MANIFEST_FORMAT,
    format_version: MANIFEST_FORMAT_VERSION,
    kind: 'source',
    dataset,
    class_names: result.classNames,
    tool_version: TOOL_VERSION,
    seed,
    config,
  };
  await writeSourceManifest(dir, metadata, result.rows);
  log(`wrote source manifest ${dir} (${result.rows.length} rows)`);
  return { dir, root: resolve(root), metadata, rebuilt: true, rows: result.rows };
}
