import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { TOOL_VERSION, UserError, sha256Hex, stableStringify } from '../../manifests/index.ts';
import { withLock } from '../../common/lock.ts';
import { createProgress, type Progress } from '../generate/progress.ts';
import { datasetCard } from './card.ts';
import { encodeParquetShard } from './parquet.ts';
import { loadExportSource, readRowImage, type ExportRow, type ExportSource } from './source.ts';
import { sampleKey, sampleMembers, writeTarShard } from './webdataset.ts';

/**
 * `export`: a finished corpus as Parquet shards (Hugging Face `datasets` layout, images embedded) or WebDataset tar
 * shards, with a dataset card (`README.md`) and `export.json` (provenance and every file's SHA-256). Only rows
 * with an image (status ok) are exported, in manifest order, split by split. The output is a pure function of the
 * corpus and the options: exporting twice gives byte-identical folders. It is built in a sibling temp folder and
 * moved into place at the end, so a reader never sees half an export.
 */

export const EXPORT_FORMATS = ['parquet', 'webdataset'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
/** Rows per shard unless told otherwise: ~100 MB of 224 px PNGs, which a Parquet writer holds about three times. */
export const DEFAULT_SHARD_ROWS = 1000;
/** The export's own description, written last. */
export const EXPORT_INFO_FILE = 'export.json';
export const EXPORT_FORMAT_ID = 'cfgen-export';
export const EXPORT_FORMAT_VERSION = 1;

/** Where an export goes unless `--out` says otherwise: `<corpus>/export/<format>/`. */
export function defaultExportDir(corpusDir: string, format: ExportFormat): string {
  return join(corpusDir, 'export', format);
}

export interface ExportOptions {
  /** the corpus folder */
  dir: string;
  format: ExportFormat;
  /** output folder (default defaultExportDir); replaced if it holds an earlier export, refused if it holds anything else */
  out?: string;
  /** rows per shard (default DEFAULT_SHARD_ROWS); every shard of a split is full but its last */
  shardRows?: number;
  progress?: Progress;
  log?: (line: string) => void;
}

/** One written shard. */
export interface ExportedFile {
  /** relative to the export folder */
  path: string;
  split: string;
  rows: number;
  bytes: number;
  sha256: string;
}

export interface ExportSummary {
  out: string;
  format: ExportFormat;
  corpusId: string;
  rows: number;
  leftOut: { skipped: number; error: number };
  files: ExportedFile[];
  /** bytes of the shards */
  bytes: number;
  seconds: number;
}

interface ShardPlan {
  split: string;
  index: number;
  count: number;
  /** the split's row index of the shard's first row (WebDataset keys continue across a split's shards) */
  offset: number;
  rows: ExportRow[];
  path: string;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** The data file pattern of a split, as the dataset card's `configs` and the README snippets name it. */
export function splitPattern(format: ExportFormat, split: string): string {
  return format === 'parquet' ? `data/${split}-*.parquet` : `data/${split}-*.tar`;
}

/** Shards split by split, `shardRows` rows each (the last of a split may be shorter); names as `datasets` writes them. */
export function planExportShards(rows: readonly ExportRow[], splits: readonly string[], shardRows: number, format: ExportFormat): ShardPlan[] {
  const plans: ShardPlan[] = [];
  for (const split of splits) {
    const mine = rows.filter((r) => r.split === split);
    const count = Math.ceil(mine.length / shardRows);
    for (let i = 0; i < count; i++) {
      const path = format === 'parquet' ? `data/${split}-${pad(i, 5)}-of-${pad(count, 5)}.parquet` : `data/${split}-${pad(i, 6)}.tar`;
      plans.push({ split, index: i, count, offset: i * shardRows, rows: mine.slice(i * shardRows, (i + 1) * shardRows), path });
    }
  }
  return plans;
}

/** Refuse to replace a folder that is not an earlier export (a typo in --out must not delete someone's data). */
async function checkOut(out: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new UserError('the export folder is a file', { file: out, fix: 'pass another --out' });
    throw e;
  }
  if (!names.length) return;
  let info: { format?: string } | null = null;
  try { info = JSON.parse(await readFile(join(out, EXPORT_INFO_FILE), 'utf8')); } catch { info = null; }
  if (info?.format !== EXPORT_FORMAT_ID) {
    throw new UserError(`the folder holds files but no ${EXPORT_INFO_FILE} of an earlier export, so it is not replaced`, {
      file: out, fix: 'pass an empty or new folder to --out (an earlier export there is replaced as a whole)',
    });
  }
}

/** Move the finished temp folder into place; an earlier export is removed only once the new one is complete. */
async function moveIntoPlace(tmp: string, out: string): Promise<void> {
  const old = `${out}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
  let moved = false;
  try {
    await rename(out, old);
    moved = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await rename(tmp, out);
  if (moved) await rm(old, { recursive: true, force: true });
}

async function writeShard(src: ExportSource, plan: ShardPlan, format: ExportFormat, file: string, tick: (n: number) => void): Promise<void> {
  const limit = pLimit(8);
  if (format === 'parquet') {
    const images = await Promise.all(plan.rows.map((r) => limit(async () => { const b = await readRowImage(src.dir, r); tick(1); return b; })));
    const bytes = encodeParquetShard(plan.rows, images, {
      kind: src.kind, classNames: src.metadata.class_names, corpus: src.metadata,
      shard: { format: EXPORT_FORMAT_ID, format_version: EXPORT_FORMAT_VERSION, tool_version: TOOL_VERSION, split: plan.split, shard: plan.index, shards: plan.count, rows: plan.rows.length },
    });
    await writeFile(file, bytes);
    return;
  }
  // a few images read ahead of the tar writer, in order
  async function* samples() {
    const ahead: Promise<Buffer>[] = [];
    let next = 0;
    for (let i = 0; i < plan.rows.length; i++) {
      while (next < plan.rows.length && next < i + 8) { const r = plan.rows[next++]; ahead.push(readRowImage(src.dir, r)); ahead.at(-1)!.catch(() => {}); }
      const image = await ahead.shift()!;
      tick(1);
      yield sampleMembers(sampleKey(plan.split, plan.offset + i), plan.rows[i], image, src.kind);
    }
  }
  await writeTarShard(file, samples());
}

/** Export the corpus in `o.dir`; see the module comment. */
export async function exportCorpus(o: ExportOptions): Promise<ExportSummary> {
  const t0 = Date.now();
  const shardRows = o.shardRows ?? DEFAULT_SHARD_ROWS;
  if (!Number.isInteger(shardRows) || shardRows < 1) throw new UserError(`shard rows must be a positive integer, got ${shardRows}`, { fix: 'e.g. --shard-rows 1000' });
  const src = await loadExportSource(o.dir);
  const out = resolve(o.out ?? defaultExportDir(o.dir, o.format));
  const plans = planExportShards(src.rows, src.splits, shardRows, o.format);
  const progress = o.progress ?? createProgress();
  await mkdir(dirname(out), { recursive: true });
  return withLock(`${out}.lock`, { purpose: 'export', what: `${out} is being written by another export` }, async () => {
    await checkOut(out);
    const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
    const files: ExportedFile[] = [];
    try {
      await mkdir(join(tmp, 'data'), { recursive: true });
      progress.start(src.rows.length, `export ${o.format} ${src.info.name}`);
      try {
        for (const plan of plans) {
          const file = join(tmp, plan.path);
          await writeShard(src, plan, o.format, file, (n) => progress.tick(n));
          const bytes = await readFile(file);
          files.push({ path: plan.path, split: plan.split, rows: plan.rows.length, bytes: bytes.length, sha256: sha256Hex(bytes) });
        }
      } finally {
        progress.stop();
      }
      const splitRows = src.splits.map((split) => ({ split, rows: src.rows.filter((r) => r.split === split).length }));
      await writeFile(join(tmp, 'README.md'), datasetCard({
        format: o.format, kind: src.kind, info: src.info, metadata: src.metadata, splitRows, leftOut: src.leftOut, pattern: (s) => splitPattern(o.format, s),
      }));
      await writeFile(join(tmp, EXPORT_INFO_FILE), `${stableStringify({
        format: EXPORT_FORMAT_ID, format_version: EXPORT_FORMAT_VERSION, export_format: o.format, tool_version: TOOL_VERSION, shard_rows: shardRows,
        corpus: {
          corpus_id: src.info.corpus_id, name: src.info.name, dataset: src.metadata.dataset, kind: src.kind === 'eval' ? 'eval' : src.info.kind,
          class_names: src.metadata.class_names, config: src.info.config, source_digest: src.info.source_digest, tool_version: src.info.tool_version,
        },
        rows: src.rows.length, left_out: src.leftOut, splits: splitRows, files,
      }, 2)}\n`);
      await moveIntoPlace(tmp, out);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
    return {
      out, format: o.format, corpusId: src.info.corpus_id, rows: src.rows.length, leftOut: src.leftOut, files,
      bytes: files.reduce((a, f) => a + f.bytes, 0), seconds: (Date.now() - t0) / 1000,
    };
  });
}
