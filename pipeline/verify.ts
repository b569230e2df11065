import { readFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as arrow from 'apache-arrow';
import { METADATA_KEY, UserError, readDoneMarkerText, sha256Hex, stableStringify, type CorpusRow, type ManifestMetadata } from '../manifests/index.ts';
import { corpusIdOf, countRows, partPath, readShardRows, rowsContentHash, type DoneMarker, type ShardCounts } from './generate/index.ts';

/**
 * `verify`: re-hash every file of a corpus against its manifest. Reports files that are missing, files whose bytes
 * changed, and manifest-level damage (a missing part or done marker, a corpus id that no longer matches the rows).
 * Image files no row names are listed as extra but are not an error.
 */
export interface VerifyReport {
  dir: string;
  corpusId: string | null;
  rows: number;
  checked: number;
  missing: string[];
  modified: string[];
  extra: string[];
  problems: string[];
  ok: boolean;
}

export async function verifyCorpus(dir: string, opts: { onFile?: () => void } = {}): Promise<VerifyReport> {
  const report: VerifyReport = { dir, corpusId: null, rows: 0, checked: 0, missing: [], modified: [], extra: [], problems: [], ok: false };
  let info: { corpus_id: string; shards: number; config: Record<string, unknown>; source_digest: string; tool_version: string; counts?: ShardCounts; shard_hashes?: string[] };
  try {
    info = JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8'));
  } catch {
    throw new UserError('no corpus.json: not a finished corpus', { file: dir, fix: 'run (or finish) `make generate` for this dataset and method' });
  }
  report.corpusId = info.corpus_id;
  const total: ShardCounts = { ok: 0, skipped: 0, error: 0 };
  const hashes: string[] = [];
  const named = new Set<string>();
  for (let i = 0; i < info.shards; i++) {
    let rows: CorpusRow[];
    try {
      rows = await readShardRows(partPath(dir, i));
    } catch {
      report.problems.push(`manifest part ${partPath(dir, i)} is missing or unreadable`);
      continue;
    }
    const counts = countRows(rows);
    for (const k of ['ok', 'skipped', 'error'] as const) total[k] += counts[k];
    try {
      // state/, or beside the part in a corpus written before state/ existed (readDoneMarkerText looks in both)
      const found = await readDoneMarkerText(dir, i);
      if (!found) throw new Error('missing');
      const marker = JSON.parse(found.text) as DoneMarker;
      if (marker.content_hash !== rowsContentHash(rows)) report.problems.push(`part ${i}: rows do not match its done marker`);
      else if (stableStringify(marker.counts) !== stableStringify(counts)) report.problems.push(`part ${i}: done marker counts ${stableStringify(marker.counts)} differ from its rows ${stableStringify(counts)}`);
    } catch {
      report.problems.push(`part ${i}: done marker missing or unreadable`);
    }
    const meta = JSON.parse(arrow.tableFromIPC(await readFile(partPath(dir, i))).schema.metadata.get(METADATA_KEY) ?? '{}') as ManifestMetadata;
    if (meta.corpus_id !== info.corpus_id) report.problems.push(`part ${i}: metadata corpus_id ${meta.corpus_id ?? '(none)'} differs from corpus.json`);
    hashes.push(rowsContentHash(rows));
    report.rows += rows.length;
    for (const r of rows) {
      if (r.status !== 'ok' || !r.image_path) continue;
      named.add(r.image_path);
      report.checked++;
      let bytes: Buffer;
      try {
        bytes = await readFile(join(dir, r.image_path));
      } catch {
        report.missing.push(r.image_path);
        opts.onFile?.();
        continue;
      }
      if (sha256Hex(bytes) !== r.sha256) report.modified.push(r.image_path);
      opts.onFile?.();
    }
  }
  if (hashes.length === info.shards && corpusIdOf(info.tool_version, info.config, info.source_digest, hashes) !== info.corpus_id) {
    report.problems.push('corpus id does not match the manifest rows (the manifest or corpus.json was edited)');
  }
  if (hashes.length === info.shards && info.shard_hashes && stableStringify(info.shard_hashes) !== stableStringify(hashes)) {
    report.problems.push('corpus.json shard_hashes differ from the manifest rows (corpus.json was edited)');
  }
  if (hashes.length === info.shards && info.counts && stableStringify(info.counts) !== stableStringify(total)) {
    report.problems.push(`corpus.json counts ${stableStringify(info.counts)} differ from the manifest rows ${stableStringify(total)}`);
  }
  // a part corpus.json does not list is from another generation: readers (openCorpus) refuse the corpus for it
  const listed = new Set(Array.from({ length: info.shards }, (_, i) => basename(partPath(dir, i))));
  for (const f of await listFiles(join(dir, 'manifest'), 'manifest')) {
    if (f.endsWith('.arrow') && !listed.has(basename(f))) report.problems.push(`${f} is not one of the ${info.shards} parts corpus.json lists (a mix of two generations)`);
  }
  for (const f of await listFiles(join(dir, 'images'), 'images')) {
    if (!named.has(f) && !/\.tmp-/.test(f)) report.extra.push(f);
  }
  report.ok = !report.missing.length && !report.modified.length && !report.problems.length;
  return report;
}

async function listFiles(abs: string, rel: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(abs, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (e.isDirectory()) out.push(...(await listFiles(join(abs, e.name), `${rel}/${e.name}`)));
    else out.push(`${rel}/${e.name}`);
  }
  return out.sort();
}
