import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CORPUS_INFO_FILE, UserError, columnsFor, openCorpus, resolveInsideRoot, sha256Hex, type CorpusInfo, type ManifestKind, type ManifestMetadata,
} from '../../manifests/index.ts';

/**
 * The corpus an export reads: opened through manifests/reader.ts's `openCorpus`, which refuses an unfinished or
 * mixed corpus and checks every part's rows against the hashes corpus.json records, so an export is always of one
 * whole, known corpus.
 */

/** A manifest row as the reader yields it (corpus or eval columns; optional columns left out when null). */
export type ExportRow = Record<string, unknown> & { id: string; split: string; label: number; image_path: string | null; sha256: string | null; status: string };

/** What an export needs of a corpus. */
export interface ExportSource {
  /** the corpus folder */
  dir: string;
  info: CorpusInfo;
  /** the parts' `cfgen` metadata (with corpus_id): copied into every exported shard */
  metadata: ManifestMetadata;
  kind: ManifestKind;
  /** rows with status ok, in manifest order: the exported rows */
  rows: ExportRow[];
  /** rows left out because they have no image */
  leftOut: { skipped: number; error: number };
  /** splits in order of first appearance */
  splits: string[];
}

/** Split names become file names and Hugging Face split names (`\w+(\.\w+)*`). */
const SPLIT_NAME = /^\w+(\.\w+)*$/;

/** Open the corpus in `dir` and collect its ok rows. A `stress-test` folder (corpus.json kind "eval") is an eval corpus. */
export async function loadExportSource(dir: string): Promise<ExportSource> {
  let kind: ManifestKind = 'corpus';
  try {
    const info = JSON.parse(await readFile(join(dir, CORPUS_INFO_FILE), 'utf8')) as { kind?: string };
    if (info.kind === 'eval') kind = 'eval';
  } catch {
    /* openCorpus names what is missing or broken */
  }
  const corpus = await openCorpus<ExportRow>(dir, { kind });
  const rows: ExportRow[] = [];
  const leftOut = { skipped: 0, error: 0 };
  const splits: string[] = [];
  for await (const row of corpus.rows()) {
    if (row.status !== 'ok' || !row.image_path) {
      if (row.status === 'error') leftOut.error++; else leftOut.skipped++;
      continue;
    }
    if (!splits.includes(row.split)) {
      if (!SPLIT_NAME.test(row.split)) {
        throw new UserError(`split "${row.split}" cannot name export files (letters, digits and _ only, dots between)`, {
          file: corpus.shards[0], row: row.id, fix: 'rename the split in the source manifest, then regenerate the corpus',
        });
      }
      splits.push(row.split);
    }
    rows.push(row);
  }
  if (!rows.length) {
    throw new UserError('the corpus has no ok rows, so nothing to export', { file: dir, fix: 'see why with `npx tsx cfgen.ts verify` and the rows\' error column, then regenerate it' });
  }
  return { dir, info: corpus.info, metadata: corpus.metadata, kind, rows, leftOut, splits };
}

/**
 * A row's image bytes, checked against the manifest's SHA-256: an export never carries a file that differs from
 * what the corpus id vouches for.
 */
export async function readRowImage(dir: string, row: ExportRow): Promise<Buffer> {
  const file = resolveInsideRoot(dir, row.image_path!, { file: 'corpus manifest', row: row.id });
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw new UserError('image file is missing', { file, row: row.id, fix: `run \`npx tsx cfgen.ts verify ${dir}\`; it prints the generate --verify command that restores it` });
  }
  if (sha256Hex(bytes) !== row.sha256) {
    throw new UserError('image file differs from the SHA-256 its manifest row records (modified after generation)', {
      file, row: row.id, fix: `run \`npx tsx cfgen.ts verify ${dir}\`; it prints the generate --verify command that restores it`,
    });
  }
  return bytes;
}

/**
 * A row with every column of its kind, in manifest order, null where the row leaves an optional column out: the
 * reader omits those (so old parts hash as they did), but an export's consumers want the same keys on every row.
 */
export function fullRow(row: ExportRow, kind: ManifestKind): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of columnsFor(kind)) out[c.name] = row[c.name] ?? null;
  return out;
}
