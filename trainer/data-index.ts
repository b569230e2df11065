import { dirname, isAbsolute, join, resolve } from 'node:path';
import { PROJECT_ROOT } from '../common/paths.ts';
import { stat } from 'node:fs/promises';
import { corpusState, readSourceManifest } from '../manifests/reader.ts';
import { UserError } from '../manifests/errors.ts';
import { rngFor } from '../manifests/rng.ts';
import type { CorpusRow, ManifestMetadata, SourceRow } from '../manifests/schema.ts';
import { joinCorpora } from './data-corpora.ts';
import type { CorpusTerm } from './method.ts';
import { datasetSlug } from '../common/paths.ts';

/**
 * The dataset a run reads (DESIGN §5): the source manifest split into train / val / test, and the corpus manifests a
 * METHOD needs, every generated row joined to its original by source_id.
 */

/** Splits used for model selection, in order of preference; without any, a held-out slice of train is used. */
export const VAL_SPLITS = ['val', 'cis_val'];
/** Fraction of train held out for validation when the source manifest has no validation split. */
export const HOLDOUT_FRACTION = 0.1;

/** `<corpora>/<dataset>/source`: the dataset's source manifest. */
export function sourceDir(corporaRoot: string, dataset: string): string {
  return join(corporaRoot, datasetSlug(dataset), 'source');
}
/** `<corpora>/<dataset>/<folder>`: one generated corpus (images + manifest). */
export function corpusDir(corporaRoot: string, dataset: string, folder: string): string {
  return join(corporaRoot, datasetSlug(dataset), folder);
}
/** The manifest folder of a corpus. */
export function corpusManifestDir(corporaRoot: string, dataset: string, folder: string): string {
  return join(corpusDir(corporaRoot, dataset, folder), 'manifest');
}

/** One term's generated images for one original: ok rows only, sorted by variant. */
export interface GeneratedSet {
  term: CorpusTerm;
  rows: CorpusRow[];
}

/** A train original with its generated images, per corpus term of the run. */
export interface TrainExample {
  row: SourceRow;
  /** parallel to the run's corpus terms; rows may be empty (mask empty / covers everything: no CF or F image) */
  generated: GeneratedSet[];
}

/** Everything a run reads of a dataset: its rows by role, joined with the run's corpora. */
export interface DatasetIndex {
  dataset: string;
  /** the source manifest folder, for error messages */
  sourceManifest: string;
  root: string;
  adapter: string;
  classNames: string[];
  metadata: ManifestMetadata;
  terms: CorpusTerm[];
  train: TrainExample[];
  val: SourceRow[];
  /** how the validation rows were chosen, for the run log */
  valSource: string;
  /** every split other than train/val (test; CCT cis_test, trans_test), rows with status ok */
  test: Map<string, SourceRow[]>;
  corpusRoots: Map<string, string>;
  /** counts for the run log: per term, originals with ≥ 1 usable generated image, and rows skipped/errored */
  corpusStats: Record<string, { originalsCovered: number; skipped: number; errors: number; variants: number }>;
  /** corpus_id of each term's corpus (the generator's content id) */
  corpusIds: Record<string, string>;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/**
 * The dataset folder named by a source manifest. A relative config.root is relative to the project folder (where
 * `cfgen dataset` records it from, common/paths.ts); a manifest written elsewhere may be relative to the folder
 * holding its corpora root (a copy of the project's data/ + corpora/ pair), which is tried next. Never the current
 * folder: the same command must find the same data wherever it is run from.
 */
export async function resolveDatasetRoot(root: string, corporaRoot: string): Promise<string | null> {
  if (isAbsolute(root)) return (await exists(root)) ? root : null;
  for (const base of [PROJECT_ROOT, dirname(resolve(corporaRoot))]) {
    const p = resolve(base, root);
    if (await exists(p)) return p;
  }
  return null;
}

/**
 * Corpus folders that the generator must make (or finish) before a run can read them: nothing there, or parts
 * without the corpus.json `generate` writes last (an interrupted generation, which resumes). A folder with a
 * corpus.json is not listed even when it is damaged: loadDatasetIndex refuses it with the reason, because
 * generating over a damaged or mixed corpus would hide what happened to it.
 */
export async function missingCorpora(corporaRoot: string, dataset: string, folders: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const f of folders) if ((await corpusState(corpusDir(corporaRoot, dataset, f))) !== 'complete') missing.push(f);
  return missing;
}

/**
 * Load the source manifest and the corpus manifests of `terms`; join generated rows to their originals.
 * Error rows of the source manifest are left out (they were reported when the dataset was built).
 */
export async function loadDatasetIndex(opts: { corporaRoot: string; dataset: string; terms: readonly CorpusTerm[] }): Promise<DatasetIndex> {
  const { corporaRoot, dataset, terms } = opts;
  const srcDir = sourceDir(corporaRoot, dataset);
  if (!(await exists(srcDir))) {
    throw new UserError(`dataset "${dataset}" has no source manifest`, {
      file: srcDir, fix: `run \`make dataset DATASET=${dataset}\` (or \`npx tsx cfgen.ts dataset ${dataset}\`) first`,
    });
  }
  const { metadata, rows } = await readSourceManifest(srcDir);
  const rawRoot = String(metadata.config?.root ?? '');
  if (!rawRoot) throw new UserError('source manifest metadata has no config.root (the dataset folder)', { file: srcDir, fix: `rebuild it with \`make dataset DATASET=${dataset}\`` });
  const root = await resolveDatasetRoot(rawRoot, corporaRoot);
  if (!root) {
    throw new UserError(`dataset folder "${rawRoot}" (config.root of the source manifest) not found`, {
      file: srcDir, fix: `put the dataset at ${isAbsolute(rawRoot) ? rawRoot : join(PROJECT_ROOT, rawRoot)} (a relative root is relative to the project folder), or rebuild the manifest: make dataset DATASET=${dataset}`,
    });
  }
  const adapter = String(metadata.config?.adapter ?? 'folder');
  const ok = rows.filter((r) => r.status === 'ok');

  const bySplit = new Map<string, SourceRow[]>();
  for (const r of ok) {
    if (!bySplit.has(r.split)) bySplit.set(r.split, []);
    bySplit.get(r.split)!.push(r);
  }
  let trainRows = (bySplit.get('train') ?? []).filter((r) => r.variant === null || r.variant === 'original');
  if (!trainRows.length) throw new UserError(`no usable train rows in dataset "${dataset}"`, { file: srcDir, fix: 'check the dataset build summary for error rows' });
  let val: SourceRow[] = [];
  let valSource = '';
  for (const s of VAL_SPLITS) {
    if (bySplit.get(s)?.length) { val = bySplit.get(s)!; valSource = `split "${s}"`; break; }
  }
  if (!val.length) {
    // Seed-independent, so every seed of an experiment selects on the same images.
    const held = (r: SourceRow): boolean => rngFor('holdout', dataset, r.id).next() < HOLDOUT_FRACTION;
    val = trainRows.filter(held);
    trainRows = trainRows.filter((r) => !held(r));
    valSource = `${Math.round(HOLDOUT_FRACTION * 100)}% of train held out (the dataset has no validation split)`;
  }
  const test = new Map<string, SourceRow[]>();
  for (const [s, rs] of bySplit) if (s !== 'train' && !VAL_SPLITS.includes(s)) test.set(s, rs);

  const { corpusRoots, corpusStats, corpusIds, joined } = await joinCorpora({ corporaRoot, dataset, srcDir, terms, trainRows });
  const train: TrainExample[] = trainRows.map((row) => ({
    row, generated: terms.map((term, t) => ({ term, rows: joined.get(row.id)![t] })),
  }));
  return { dataset, sourceManifest: srcDir, root, adapter, classNames: metadata.class_names, metadata, terms: [...terms], train, val, valSource, test, corpusRoots, corpusStats, corpusIds };
}
