import { readFile } from 'node:fs/promises';
import * as arrow from 'apache-arrow';
import { METADATA_KEY, encodeManifest, stableStringify, writeFileAtomic, type EvalRow, type ManifestMetadata } from '../../manifests/index.ts';
import { partPath, readShardRows, writeDoneMarker, type DoneMarker } from '../generate/shards.ts';
import type { WrittenFile } from '../generate/item.ts';

/**
 * Eval-manifest shards. The layout, the done marker and the resume check are the generator's (generate/shards.ts:
 * `shardState` reads any kind of part, since the reader picks the columns from the part's metadata), so `verify`
 * and resume treat a stress-test corpus like any corpus. Only the encoding differs: the generator's writer encodes
 * corpus rows, these are eval rows.
 */

/** Write a finished eval shard: the part (no corpus_id yet), then its done marker (in `state/`), last. */
export async function writeEvalShard(
  dir: string, index: number, metadata: ManifestMetadata, rows: EvalRow[], files: WrittenFile[], configHash: string,
): Promise<DoneMarker> {
  await writeFileAtomic(partPath(dir, index), encodeManifest('eval', metadata, rows));
  return writeDoneMarker(dir, index, rows, files, configHash);
}

/** Re-stamp every part with the final metadata (corpus_id included); parts already stamped are left alone. */
export async function stampEvalShards(dir: string, shards: number, metadata: ManifestMetadata): Promise<void> {
  for (let i = 0; i < shards; i++) {
    const path = partPath(dir, i);
    const table = arrow.tableFromIPC(await readFile(path));
    const current = JSON.parse(table.schema.metadata.get(METADATA_KEY) ?? '{}') as ManifestMetadata;
    if (stableStringify(current) === stableStringify(metadata)) continue;
    const rows = (await readShardRows(path)) as unknown as EvalRow[];
    await writeFileAtomic(path, encodeManifest('eval', metadata, rows));
  }
}
