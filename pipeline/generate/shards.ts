import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import {
  CORPUS_LAYOUT, METADATA_KEY, columnsFor, corpusPartPath, doneMarkerPath, encodeManifest, legacyDoneMarkerPath, openManifest,
  readDoneMarkerText, sha256Hex, stableStringify, writeFileAtomic, writeJsonAtomic, type CorpusRow, type EvalRow, type ManifestKind,
  type ManifestMetadata,
} from '../../manifests/index.ts';
import type { WrittenFile } from './item.ts';

/**
 * Corpus shards on disk: `<corpus>/manifest/part-NNNNN.arrow`, then its done marker `<corpus>/state/part-NNNNN.done`,
 * written last. A shard counts as done only when the marker exists, was written for the same content config, the
 * part has every column of its kind, its rows hash to the marker's content hash and every image file has the size
 * the marker recorded. Anything less and the shard is generated again, which is safe because every byte of it is a
 * function of the config.
 */

/** The `format` of a done marker, so a stray JSON file is never taken for one. */
export const DONE_FORMAT = 'cfgen-shard-done';

/** Rows by status. */
export interface ShardCounts {
  ok: number;
  skipped: number;
  error: number;
}

/** The `part-NNNNN.done` file: proof that a shard and all its images were written for this config. */
export interface DoneMarker {
  format: typeof DONE_FORMAT;
  shard: number;
  rows: number;
  config_hash: string;
  /** SHA-256 of the canonical JSON of the shard's rows (independent of the Arrow metadata) */
  content_hash: string;
  counts: ShardCounts;
  /** image path (relative to the corpus folder) → size in bytes */
  files: Record<string, number>;
}

/** Shard `index` covers source rows [start, end). */
export interface ShardSlice {
  index: number;
  start: number;
  end: number;
}

/** Fixed shards of `shardSize` rows (the last may be shorter): the same plan for any worker count. */
export function planShards(rows: number, shardSize: number): ShardSlice[] {
  const out: ShardSlice[] = [];
  for (let s = 0, i = 0; s < rows; s += shardSize, i++) out.push({ index: i, start: s, end: Math.min(rows, s + shardSize) });
  return out;
}

/** The manifest part of shard `shard` of the corpus in `dir`. */
export const partPath = corpusPartPath;
/** The done marker of shard `shard` (written after its part), in `<dir>/state/`. */
export const donePath = doneMarkerPath;
/** The generation-state folder of a corpus: done markers, shard claims, the plan (never read by consumers). */
export const stateDir = (dir: string): string => join(dir, CORPUS_LAYOUT.state);

/** SHA-256 of the rows' canonical JSON: what a done marker and the corpus id record. */
export function rowsContentHash(rows: readonly CorpusRow[]): string {
  return sha256Hex(stableStringify(rows));
}

/** Count rows by status. */
export function countRows(rows: readonly CorpusRow[]): ShardCounts {
  const c: ShardCounts = { ok: 0, skipped: 0, error: 0 };
  for (const r of rows) c[r.status as keyof ShardCounts]++;
  return c;
}

/** All rows of one manifest part. */
export async function readShardRows(path: string): Promise<CorpusRow[]> {
  const m = await openManifest<CorpusRow>(path);
  const rows: CorpusRow[] = [];
  for await (const r of m.rows()) rows.push(r);
  return rows;
}

/** The columns of its kind that a part lacks (it was written by an older cfgen, before they were added). */
async function missingColumns(path: string): Promise<string[]> {
  const bytes = await readFile(path);
  const reader = arrow.RecordBatchReader.from(bytes);
  reader.open();
  const meta = JSON.parse(reader.schema.metadata.get(METADATA_KEY) ?? '{}') as { kind?: ManifestKind };
  const have = new Set(reader.schema.fields.map((f) => f.name));
  return columnsFor(meta.kind ?? 'corpus').map((c) => c.name).filter((n) => !have.has(n));
}

/** A shard on disk: done for this config, missing, stale (regenerate it), or made by another config (refuse). */
export type ShardState = { state: 'done'; marker: DoneMarker } | { state: 'missing' } | { state: 'stale'; why: string } | { state: 'other-config' };

/** How hard to look at a done shard before trusting it. */
export interface ShardCheck {
  /** re-hash every image against its row's sha256 (`generate --verify`): finds same-size damage the size check misses */
  rehash?: boolean;
}

const sameCounts = (a: ShardCounts, b: Partial<ShardCounts> | undefined) => !!b && a.ok === b.ok && a.skipped === b.skipped && a.error === b.error;

/**
 * Is shard `index` of the corpus in `dir` complete for this config? The marker is only trusted as far as the part's
 * rows confirm it: its content hash, its counts and its file list must all be those of the rows (so an edited marker
 * never reaches corpus.json), and every image must exist with the recorded size (with `rehash`, the recorded
 * SHA-256). The marker returned carries the counts recomputed from the rows.
 */
export async function shardState(dir: string, index: number, configHash: string, check: ShardCheck = {}): Promise<ShardState> {
  let marker: DoneMarker;
  try {
    const found = await readDoneMarkerText(dir, index);
    if (!found) return { state: 'missing' };
    marker = JSON.parse(found.text) as DoneMarker;
  } catch {
    return { state: 'stale', why: 'unreadable done marker' };
  }
  if (!marker || marker.format !== DONE_FORMAT) return { state: 'stale', why: 'not a done marker' };
  if (marker.config_hash !== configHash) return { state: 'other-config' };
  let rows: CorpusRow[];
  try {
    const missing = await missingColumns(partPath(dir, index));
    if (missing.length) return { state: 'stale', why: `written by an older cfgen, without the column(s) ${missing.join(', ')}` };
    rows = await readShardRows(partPath(dir, index));
  } catch {
    return { state: 'stale', why: 'manifest part missing or unreadable' };
  }
  if (rows.length !== marker.rows || rowsContentHash(rows) !== marker.content_hash) return { state: 'stale', why: 'manifest part does not match its done marker' };
  const counts = countRows(rows);
  if (!sameCounts(counts, marker.counts)) return { state: 'stale', why: 'done marker counts differ from its rows' };
  const images = new Map<string, string | null>();
  for (const r of rows) if (r.status === 'ok' && r.image_path) images.set(r.image_path, r.sha256);
  const listed = Object.keys(marker.files ?? {});
  if (listed.length !== images.size || listed.some((f) => !images.has(f))) return { state: 'stale', why: 'done marker lists other files than its rows' };
  for (const [rel, size] of Object.entries(marker.files)) {
    try {
      if ((await stat(join(dir, rel))).size !== size) return { state: 'stale', why: `${rel} has the wrong size` };
    } catch {
      return { state: 'stale', why: `${rel} is missing` };
    }
    if (check.rehash) {
      let bytes: Buffer;
      try {
        bytes = await readFile(join(dir, rel));
      } catch {
        return { state: 'stale', why: `${rel} is unreadable` };
      }
      if (sha256Hex(bytes) !== images.get(rel)) return { state: 'stale', why: `${rel} was modified (its SHA-256 differs from the manifest)` };
    }
  }
  return { state: 'done', marker: { ...marker, counts } };
}

/** Write a finished shard: the part (metadata without corpus_id yet), then the done marker. */
export async function writeShard(
  dir: string, index: number, metadata: ManifestMetadata, rows: CorpusRow[], files: WrittenFile[], configHash: string,
): Promise<DoneMarker> {
  await writeFileAtomic(partPath(dir, index), encodeManifest('corpus', metadata, rows));
  return writeDoneMarker(dir, index, rows, files, configHash);
}

/**
 * Write shard `index`'s done marker (after its part) into `state/`, and drop a marker an older cfgen left beside the
 * part, so `manifest/` ends up holding only Arrow files.
 */
export async function writeDoneMarker(
  dir: string, index: number, rows: readonly (CorpusRow | EvalRow)[], files: readonly WrittenFile[], configHash: string,
): Promise<DoneMarker> {
  const fileSizes: Record<string, number> = {};
  for (const f of files) fileSizes[f.path] = f.size;
  // countRows/rowsContentHash only read `status` and the canonical JSON, which eval rows have like corpus rows
  const marker: DoneMarker = {
    format: DONE_FORMAT, shard: index, rows: rows.length, config_hash: configHash,
    content_hash: rowsContentHash(rows as CorpusRow[]), counts: countRows(rows as CorpusRow[]), files: fileSizes,
  };
  await writeJsonAtomic(donePath(dir, index), marker);
  await rm(legacyDoneMarkerPath(dir, index), { force: true });
  return marker;
}

/**
 * Remove manifest parts (and their done markers) numbered `shards` or above: left by another generation of the
 * folder, they would make readers refuse the corpus as a mix. Call it only while holding the corpus lock (finalize).
 */
export async function removeExtraParts(dir: string, shards: number): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, CORPUS_LAYOUT.manifest));
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names.sort()) {
    const m = /^part-(\d+)\.(arrow|done)$/.exec(n);
    if (!m || Number(m[1]) < shards) continue;
    await rm(join(dir, CORPUS_LAYOUT.manifest, n), { force: true });
    await rm(donePath(dir, Number(m[1])), { force: true });
    removed.push(n);
  }
  return removed;
}

/**
 * Move the done markers of shards [0, shards) that an older cfgen wrote beside the parts into `state/` (or drop
 * them where `state/` already has one). Call it only while holding the corpus lock (finalize).
 */
export async function moveLegacyMarkers(dir: string, shards: number): Promise<number> {
  let moved = 0;
  for (let i = 0; i < shards; i++) {
    const old = legacyDoneMarkerPath(dir, i);
    try {
      await stat(old);
    } catch {
      continue;
    }
    try {
      await stat(donePath(dir, i));
      await rm(old, { force: true });
    } catch {
      await mkdir(stateDir(dir), { recursive: true });
      await rename(old, donePath(dir, i));
    }
    moved++;
  }
  return moved;
}

/**
 * The corpus id: SHA-256 over the tool version, the content config, the source manifest digest and the shards'
 * content hashes in order. Worker count, paths and resume history are not in it, so equal ids mean equal images.
 */
export function corpusIdOf(toolVersion: string, config: Record<string, unknown>, sourceDigest: string, contentHashes: string[]): string {
  return sha256Hex(stableStringify({ tool_version: toolVersion, config, source_digest: sourceDigest, shards: contentHashes }));
}

/** Re-stamp every part with the final metadata (corpus_id included); parts already stamped are left alone. */
export async function stampShards(dir: string, shards: number, metadata: ManifestMetadata): Promise<void> {
  for (let i = 0; i < shards; i++) {
    const path = partPath(dir, i);
    const bytes = await readFile(path);
    const table = arrow.tableFromIPC(bytes);
    const current = JSON.parse(table.schema.metadata.get(METADATA_KEY) ?? '{}') as ManifestMetadata;
    if (current.corpus_id === metadata.corpus_id && stableStringify(current) === stableStringify(metadata)) continue;
    const rows = await readShardRows(path);
    await writeFileAtomic(path, encodeManifest('corpus', metadata, rows));
  }
}

/**
 * Remove the `*.tmp-*` files a killed run leaves behind (writeFileAtomic's temp names), so a rerun is byte-clean.
 * Only call it while holding the corpus lock: a live run's temp files look the same, and removing one makes that
 * run die with ENOENT.
 */
export async function removeTempFiles(dir: string): Promise<number> {
  let removed = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.tmp-\d+-[0-9a-f]+$/.test(e.name)) { await rm(p, { force: true }); removed++; }
    }
  };
  await walk(dir);
  return removed;
}

/** Empty a corpus folder for `--force`, keeping the entries named in `keep` (the lock this run holds on it). */
export async function clearCorpusDir(dir: string, keep: readonly string[]): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  for (const e of entries) if (!keep.includes(e)) await rm(join(dir, e), { recursive: true, force: true });
}
