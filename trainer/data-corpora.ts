import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { CORPUS_INFO_FILE, manifestDigest, openCorpus } from '../manifests/reader.ts';
import type { CorpusRow, SourceRow } from '../manifests/schema.ts';
import type { CorpusTerm } from './method.ts';
import { datasetSlug } from '../common/paths.ts';

/**
 * The corpora of a run, joined to its train originals. Every corpus is opened through the manifests contract
 * (`openCorpus`), so a run reads a complete corpus of one piece or stops: never a glob of whatever parts are on
 * disk under the id of the first one.
 */

/** Per-term counts for the run log and config.json: originals with ≥ 1 usable generated image, rows skipped/errored. */
export interface CorpusStats { originalsCovered: number; skipped: number; errors: number; variants: number }

/** What joinCorpora found: per term its folder, counts and corpus id, and per train original its rows per term. */
export interface JoinedCorpora {
  corpusRoots: Map<string, string>;
  corpusStats: Record<string, CorpusStats>;
  corpusIds: Record<string, string>;
  /** train original id → per term, its ok rows sorted by variant */
  joined: Map<string, CorpusRow[][]>;
}

/**
 * Open the corpus of each term (`<corpora>/<dataset>/<folder>`), check it belongs to this dataset and this version
 * of the source manifest, and join its ok rows to `trainRows` by source_id. openCorpus checks, as the rows stream,
 * that they are the rows the corpus id names; a corpus that fails any check is a UserError, not fewer rows.
 */
export async function joinCorpora(o: {
  corporaRoot: string; dataset: string; srcDir: string; terms: readonly CorpusTerm[]; trainRows: readonly SourceRow[];
}): Promise<JoinedCorpora> {
  const { corporaRoot, dataset, srcDir, terms, trainRows } = o;
  const out: JoinedCorpora = { corpusRoots: new Map(), corpusStats: {}, corpusIds: {}, joined: new Map(trainRows.map((r) => [r.id, terms.map(() => [])])) };
  let sourceDigest: string | undefined;
  for (let t = 0; t < terms.length; t++) {
    const term = terms[t];
    const dir = join(corporaRoot, datasetSlug(dataset), term.folder);
    const c = await openCorpus<CorpusRow>(dir);
    const regenerate = `regenerate it: npx tsx cfgen.ts generate --dataset ${dataset} --methods ${term.folder} --force`;
    if (c.info.dataset !== dataset) {
      throw new UserError(`corpus belongs to dataset "${c.info.dataset}", not "${dataset}"`, { file: dir, fix: regenerate });
    }
    if (c.info.source_digest !== (sourceDigest ??= await manifestDigest(srcDir, 'source'))) {
      throw new UserError(`corpus ${term.folder} was generated from another version of the source manifest`, { file: dir, fix: regenerate });
    }
    out.corpusIds[term.folder] = c.info.corpus_id;
    out.corpusRoots.set(term.folder, dir);
    const stats: CorpusStats = { originalsCovered: 0, skipped: 0, errors: 0, variants: 0 };
    const variants = new Set<number>();
    for await (const r of c.rows()) {
      if (r.status !== 'ok') { if (r.status === 'error') stats.errors++; else stats.skipped++; continue; }
      if (r.kind !== term.kind) {
        throw new UserError(`row ${r.id} has kind "${r.kind}" in the ${term.folder} corpus (expected "${term.kind}")`, { file: dir, fix: regenerate });
      }
      const slot = out.joined.get(r.source_id);
      if (!slot) continue; // an original of another split, or one the source manifest no longer lists as ok
      slot[t].push(r);
      variants.add(r.variant);
    }
    stats.variants = variants.size;
    for (const sets of out.joined.values()) {
      sets[t].sort((a, b) => a.variant - b.variant);
      if (sets[t].length) stats.originalsCovered++;
    }
    out.corpusStats[term.folder] = stats;
  }
  return out;
}

/**
 * Stop with the reason when a corpus a run is reading changed under it: its corpus.json is gone (a `generate
 * --force` removes the folder first) or names another corpus id than the one the run loaded. The run calls it at
 * the end of every epoch, before committing it, and when reading an image fails, so a regeneration surfaces as
 * this message rather than as a missing-file error midway through an epoch, and no epoch trained on a mix of two
 * corpora is ever committed.
 */
export async function assertCorporaUnchanged(loaded: { corpusRoots: Map<string, string>; corpusIds: Record<string, string> }, epoch: number): Promise<void> {
  for (const [folder, dir] of loaded.corpusRoots) {
    const file = join(dir, CORPUS_INFO_FILE);
    let now: string | null = null;
    try {
      now = String((JSON.parse(await readFile(file, 'utf8')) as { corpus_id?: unknown }).corpus_id);
    } catch { /* gone or being rewritten: reported below */ }
    if (now === loaded.corpusIds[folder]) continue;
    const what = now === null ? `its ${CORPUS_INFO_FILE} is gone or unreadable (is it being regenerated?)` : `it is now corpus ${now.slice(0, 12)}, not ${loaded.corpusIds[folder].slice(0, 12)} (regenerated)`;
    throw new UserError(`corpus ${folder} changed while this run was training on it: ${what}; epoch ${epoch} is not committed`, {
      file,
      fix: `the run keeps its last committed epoch. Once the corpus is complete again, rerun the same command: it resumes if the corpus id is the one the run started with, and is refused otherwise; train on the new corpus with --fresh or under a new --run-id`,
    });
  }
}
