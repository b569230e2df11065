import * as arrow from 'apache-arrow';
import fg from 'fast-glob';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { METADATA_KEY, MANIFEST_FORMAT, columnsFor, type ManifestMetadata, type SourceRow, type CorpusRow, type ManifestKind } from './schema.ts';
import { UserError } from './errors.ts';
import { sha256Hex } from './io.ts';

/** The shard files of a manifest: a single `.arrow` file, or every `*.arrow` in a folder, sorted. */
export async function manifestShards(pathOrDir: string, prefix?: string): Promise<string[]> {
  let st;
  try {
    st = await stat(pathOrDir);
  } catch {
    throw new UserError('manifest not found', { file: pathOrDir, fix: 'run `make dataset` (source manifest) or `make generate` (corpus) first' });
  }
  if (st.isFile()) return [pathOrDir];
  const shards = (await fg(`${prefix ?? '*'}${prefix ? '-*' : ''}.arrow`, { cwd: pathOrDir, absolute: true, onlyFiles: true })).sort();
  if (!shards.length) throw new UserError('no *.arrow manifest shards in this folder', { file: pathOrDir, fix: 'run `make dataset` or `make generate` to write them' });
  return shards;
}

function decodeMetadata(schema: arrow.Schema, file: string): ManifestMetadata {
  const raw = schema.metadata.get(METADATA_KEY);
  if (!raw) throw new UserError(`not a cfgen manifest: schema metadata has no "${METADATA_KEY}" key`, { file });
  let meta: ManifestMetadata;
  try {
    meta = JSON.parse(raw) as ManifestMetadata;
  } catch (e) {
    throw new UserError(`manifest metadata is not valid JSON (${(e as Error).message})`, { file });
  }
  if (meta.format !== MANIFEST_FORMAT) throw new UserError(`unknown manifest format "${String(meta.format)}"`, { file });
  return meta;
}

function rowsOf<R>(table: arrow.Table | arrow.RecordBatch, kind: ManifestKind): R[] {
  const names = columnsFor(kind).map((c) => c.name);
  const cols = names.map((n) => table.getChild(n));
  const out: R[] = new Array(table.numRows);
  for (let i = 0; i < table.numRows; i++) {
    const row: Record<string, unknown> = {};
    for (let j = 0; j < names.length; j++) {
      const v = cols[j]?.get(i);
      row[names[j]] = v instanceof arrow.Vector ? Array.from(v.toArray() as Float32Array) : v ?? null;
    }
    out[i] = row as R;
  }
  return out;
}

export interface OpenManifest<R> {
  metadata: ManifestMetadata;
  shards: string[];
  /** Stream the rows shard by shard, batch by batch: memory is bounded by one record batch. */
  rows(): AsyncGenerator<R>;
}

export async function openManifest<R = SourceRow | CorpusRow>(pathOrDir: string, opts: { prefix?: string } = {}): Promise<OpenManifest<R>> {
  const shards = await manifestShards(pathOrDir, opts.prefix);
  const first = arrow.RecordBatchReader.from(await readFile(shards[0]));
  first.open();
  const metadata = decodeMetadata(first.schema, shards[0]);
  return {
    metadata,
    shards,
    async *rows() {
      for (const shard of shards) {
        const reader = arrow.RecordBatchReader.from(await readFile(shard));
        for (const batch of reader) yield* rowsOf<R>(batch, metadata.kind);
      }
    },
  };
}

export async function readSourceManifest(pathOrDir: string): Promise<{ metadata: ManifestMetadata; rows: SourceRow[] }> {
  const m = await openManifest<SourceRow>(pathOrDir, { prefix: 'source' });
  if (m.metadata.kind !== 'source') throw new UserError(`expected a source manifest, found a ${m.metadata.kind} manifest`, { file: m.shards[0] });
  const rows: SourceRow[] = [];
  for await (const r of m.rows()) rows.push(r);
  return { metadata: m.metadata, rows };
}

/** A digest of a manifest's content: SHA-256 over its shards' names and bytes, in order. */
export async function manifestDigest(pathOrDir: string, prefix?: string): Promise<string> {
  const shards = await manifestShards(pathOrDir, prefix);
  const parts: string[] = [];
  for (const s of shards) parts.push(`${basename(s)}:${sha256Hex(await readFile(s))}`);
  return sha256Hex(parts.join('\n'));
}
