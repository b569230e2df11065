import * as arrow from 'apache-arrow';
import { join } from 'node:path';
import { arrowSchema, arrowType, columnsFor, type ManifestKind, type ManifestMetadata, type SourceRow, type CorpusRow, type EvalRow } from './schema.ts';
import { writeFileAtomic, sha256Hex } from './io.ts';

type AnyRow = SourceRow | CorpusRow | EvalRow;

/** Encode rows as one Arrow IPC file (in memory). Same rows + metadata → same bytes. */
export function encodeManifest(kind: ManifestKind, metadata: ManifestMetadata, rows: readonly AnyRow[]): Uint8Array {
  const schema = arrowSchema(kind, metadata);
  const cols = columnsFor(kind);
  const data: Record<string, arrow.Vector> = {};
  for (const c of cols) {
    const values = rows.map((r, i) => {
      const v = (r as Record<string, unknown>)[c.name];
      // an optional column left out of a row object is null (schema.ts ColumnSpec.optional)
      if (v === undefined && c.optional) return null;
      if (v === undefined || (v === null && !c.nullable)) {
        throw new Error(`manifest row ${i}: column "${c.name}" is required (${c.doc})`);
      }
      return v;
    });
    data[c.name] = arrow.vectorFromArray(values, arrowType(c.type) as arrow.DataType);
  }
  const batch = new arrow.RecordBatch(
    schema,
    arrow.makeData({
      type: new arrow.Struct(schema.fields),
      length: rows.length,
      nullCount: 0,
      children: cols.map((c) => data[c.name].data[0]),
    }),
  );
  const table = new arrow.Table(schema, rows.length ? [batch] : []);
  return arrow.tableToIPC(table, 'file');
}

/** Write one shard atomically; returns its SHA-256. */
export async function writeManifestShard(
  path: string, kind: ManifestKind, metadata: ManifestMetadata, rows: readonly AnyRow[],
): Promise<string> {
  const bytes = encodeManifest(kind, metadata, rows);
  await writeFileAtomic(path, bytes);
  return sha256Hex(bytes);
}

export function shardName(prefix: string, index: number): string {
  return `${prefix}-${String(index).padStart(5, '0')}.arrow`;
}

/**
 * Buffers rows and writes fixed-size shards `<dir>/<prefix>-NNNNN.arrow`, each atomically,
 * so memory stays bounded however large the dataset.
 */
export class ManifestWriter<R extends AnyRow = AnyRow> {
  private buffer: R[] = [];
  private shardIndex = 0;
  readonly written: { path: string; sha256: string; rows: number }[] = [];

  constructor(
    readonly dir: string,
    readonly kind: ManifestKind,
    readonly metadata: ManifestMetadata,
    readonly opts: { rowsPerShard?: number; prefix?: string } = {},
  ) {}

  async write(row: R): Promise<void> {
    this.buffer.push(row);
    if (this.buffer.length >= (this.opts.rowsPerShard ?? 50_000)) await this.flush();
  }

  async flush(): Promise<void> {
    if (!this.buffer.length && this.shardIndex > 0) return;
    const path = join(this.dir, shardName(this.opts.prefix ?? 'part', this.shardIndex++));
    const sha256 = await writeManifestShard(path, this.kind, this.metadata, this.buffer);
    this.written.push({ path, sha256, rows: this.buffer.length });
    this.buffer = [];
  }

  /** Flush what is left (an empty manifest still gets one shard, carrying the metadata). */
  async close(): Promise<typeof this.written> {
    if (this.buffer.length || this.shardIndex === 0) await this.flush();
    return this.written;
  }
}
