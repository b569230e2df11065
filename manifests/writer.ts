import * as arrow from 'apache-arrow';
import { join } from 'node:path';
import { arrowSchema, arrowType, columnsFor, type ColType, type ManifestKind, type ManifestMetadata, type SourceRow, type CorpusRow, type EvalRow } from './schema.ts';
import { writeFileAtomic, sha256Hex } from './io.ts';

type AnyRow = SourceRow | CorpusRow | EvalRow;

/**
 * A zeroed bitmap for n bits, padded as apache-arrow's builders pad it (a multiple of 64 bytes, at least 64): its IPC
 * writer keeps a bitmap's padding, so the file bytes depend on it.
 */
function bitmap(n: number): Uint8Array {
  return new Uint8Array(Math.max(64, Math.ceil(((n + 7) >> 3) / 64) * 64));
}

/** Arrow's value offsets of a variable-size column: value i spans [offsets[i], offsets[i + 1]), null spans nothing. */
function valueOffsets(values: readonly unknown[], sizeOf: (v: unknown, i: number) => number): Int32Array {
  const offsets = new Int32Array(values.length + 1);
  let end = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== null && v !== undefined) end += sizeOf(v, i);
    offsets[i + 1] = end;
  }
  return offsets;
}

/**
 * One column's Arrow data, built straight into its final buffers: the same file bytes as `arrow.vectorFromArray`
 * (its IPC writer trims value buffers to their logical length and keeps bitmaps as padded, see `bitmap`), at a
 * fraction of the memory. Arrow's Utf8 builder kept a Map entry and an encoded Uint8Array per value, about 0.4 kB per
 * row per string column, which made writing a 50k-row shard the largest transient of `dataset`
 * (test/manifest-encode.test.ts checks the bytes against Arrow's builders).
 */
export function columnData(type: ColType, values: readonly unknown[], column = ''): arrow.Data {
  const n = values.length;
  let nullCount = 0;
  const validity = bitmap(n);
  for (let i = 0; i < n; i++) {
    if (values[i] === null || values[i] === undefined) nullCount++;
    else validity[i >> 3] |= 1 << (i & 7);
  }
  const nullBitmap = nullCount ? validity : undefined;
  const bad = (i: number, expected: string): never => {
    throw new Error(`manifest column "${column}", row ${i}: expected ${expected}, got ${JSON.stringify(values[i])}`);
  };
  switch (type) {
    case 'utf8': {
      const offsets = valueOffsets(values, (v, i) => (typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : bad(i, 'a string')));
      const bytes = offsets[n];
      const data = Buffer.alloc(bytes);
      for (let i = 0; i < n; i++) if (offsets[i + 1] > offsets[i]) data.write(values[i] as string, offsets[i], 'utf8');
      return arrow.makeData({ type: new arrow.Utf8(), length: n, nullCount, nullBitmap, valueOffsets: offsets, data: new Uint8Array(data.buffer, data.byteOffset, bytes) });
    }
    case 'int32':
    case 'float32': {
      const data = type === 'int32' ? new Int32Array(n) : new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) continue;
        if (typeof v !== 'number') bad(i, 'a number');
        data[i] = v as number;
      }
      return type === 'int32'
        ? arrow.makeData({ type: new arrow.Int32(), length: n, nullCount, nullBitmap, data: data as Int32Array })
        : arrow.makeData({ type: new arrow.Float32(), length: n, nullCount, nullBitmap, data: data as Float32Array });
    }
    case 'bool': {
      const data = bitmap(n);
      for (let i = 0; i < n; i++) {
        const v = values[i];
        if (v === null || v === undefined) continue;
        if (typeof v !== 'boolean') bad(i, 'true or false');
        if (v) data[i >> 3] |= 1 << (i & 7);
      }
      return arrow.makeData({ type: new arrow.Bool(), length: n, nullCount, nullBitmap, data });
    }
    case 'list<float32>': {
      const offsets = valueOffsets(values, (v, i) => (Array.isArray(v) || ArrayBuffer.isView(v) ? (v as ArrayLike<number>).length : bad(i, 'an array of numbers')));
      const total = offsets[n];
      const items = new Float32Array(total);
      for (let i = 0; i < n; i++) if (offsets[i + 1] > offsets[i]) items.set(values[i] as ArrayLike<number>, offsets[i]);
      const listType = arrowType('list<float32>') as arrow.List<arrow.Float32>;
      const child = arrow.makeData({ type: listType.children[0].type, length: total, nullCount: 0, data: items });
      return arrow.makeData({ type: listType, length: n, nullCount, nullBitmap, valueOffsets: offsets, child });
    }
  }
}

/** Encode rows as one Arrow IPC file (in memory). Same rows + metadata → same bytes. */
export function encodeManifest(kind: ManifestKind, metadata: ManifestMetadata, rows: readonly AnyRow[]): Uint8Array {
  const schema = arrowSchema(kind, metadata);
  const cols = columnsFor(kind);
  const children = cols.map((c) => {
    const values = rows.map((r, i) => {
      const v = (r as Record<string, unknown>)[c.name];
      // an optional column left out of a row object is null (schema.ts ColumnSpec.optional)
      if (v === undefined && c.optional) return null;
      if (v === undefined || (v === null && !c.nullable)) {
        throw new Error(`manifest row ${i}: column "${c.name}" is required (${c.doc})`);
      }
      return v;
    });
    return columnData(c.type, values, c.name);
  });
  const batch = new arrow.RecordBatch(
    schema,
    arrow.makeData({ type: new arrow.Struct(schema.fields), length: rows.length, nullCount: 0, children }),
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
