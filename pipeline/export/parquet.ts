import * as arrow from 'apache-arrow';
import * as pw from 'parquet-wasm/node';
import type { ManifestKind, ManifestMetadata } from '../../manifests/index.ts';
import { cellOf, exportColumns, hfMetadata } from './features.ts';
import type { ExportRow } from './source.ts';

/**
 * One Parquet shard of an export: the rows with their image bytes embedded, in the Hugging Face `datasets` layout
 * (features.ts), written by parquet-wasm (the Rust `parquet` crate). Same rows and options, same bytes: nothing in
 * the file depends on the time, the machine or the output folder.
 */

/** Rows per row group: `datasets` uses 100 for image datasets, so a reader never holds more than ~100 images. */
export const PARQUET_ROW_GROUP_ROWS = 100;

/** What every shard of one export records besides its rows. */
export interface ParquetShardMeta {
  kind: ManifestKind;
  classNames: readonly string[];
  /** the corpus parts' `cfgen` metadata (corpus id, config, tool version, source digest), copied as is */
  corpus: ManifestMetadata;
  /** the `cfgen_export` metadata of this shard (export format version, split, shard index and count, rows) */
  shard: Record<string, unknown>;
}

/**
 * The Arrow schema metadata of a shard: `huggingface` (features), `cfgen` (provenance), `cfgen_export`. Readers
 * that restore the Arrow schema (pyarrow, hence `datasets`; arrow-rs; DuckDB's ARROW:schema) see all three.
 */
export function parquetMetadata(meta: ParquetShardMeta): Map<string, string> {
  return new Map([
    ['huggingface', hfMetadata(meta.kind, meta.classNames)],
    ['cfgen', JSON.stringify(meta.corpus)],
    ['cfgen_export', JSON.stringify(meta.shard)],
  ]);
}

/** Encode rows (with their image bytes, same order) as one Parquet file. */
export function encodeParquetShard(rows: readonly ExportRow[], images: readonly Uint8Array[], meta: ParquetShardMeta): Uint8Array {
  const columns = exportColumns(meta.kind);
  const kv = parquetMetadata(meta);
  const fields = columns.map((c) => new arrow.Field(c.name, c.type, true));
  const schema = new arrow.Schema(fields, kv);
  // one record batch per row group: arrow's 32-bit offsets then bound a batch, never the whole shard
  const batches: arrow.RecordBatch[] = [];
  for (let b = 0; b < rows.length; b += PARQUET_ROW_GROUP_ROWS) {
    const slice = rows.slice(b, b + PARQUET_ROW_GROUP_ROWS);
    const children = columns.map((c) => arrow.vectorFromArray(slice.map((r, i) => cellOf(c, r, { bytes: images[b + i], path: r.image_path! })), c.type).data[0]);
    batches.push(new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(fields), length: slice.length, nullCount: 0, children })));
  }
  const ipc = arrow.tableToIPC(new arrow.Table(schema, batches), 'stream');
  const props = new pw.WriterPropertiesBuilder()
    .setCompression(pw.Compression.SNAPPY)
    .setMaxRowGroupSize(PARQUET_ROW_GROUP_ROWS)
    // image bytes: no dictionary (every value is distinct) and no min/max statistics (they would copy image bytes)
    .setColumnDictionaryEnabled('image.bytes', false)
    .setColumnStatisticsEnabled('image.bytes', pw.EnabledStatistics.None)
    // `cfgen` in the file's own key/value metadata too, for readers that do not decode ARROW:schema. One key only:
    // parquet-wasm takes this map through a hash map, and two or more keys come out in a different order per call
    // (the schema metadata above keeps its order)
    .setKeyValueMetadata(new Map([['cfgen', kv.get('cfgen')!]]))
    .build();
  return pw.writeParquet(pw.Table.fromIPCStream(ipc), props);
}
