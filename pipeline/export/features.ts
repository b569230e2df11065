import * as arrow from 'apache-arrow';
import { columnsFor, type ColumnSpec, type ManifestKind } from '../../manifests/index.ts';

/**
 * The exported table's columns and their Hugging Face `datasets` features: an `image` column first (the Image
 * feature's storage, struct<bytes: binary, path: string>, with the file's bytes embedded), then every manifest column
 * in manifest order, `label` as a ClassLabel over the dataset's class names.
 *
 * `datasets` takes a column's feature from the Parquet schema metadata (key `huggingface`,
 * `{"info": {"features": {...}}}`) only when the column's Arrow field equals the one that feature implies
 * (`Features.from_arrow_schema`), otherwise it guesses from the Arrow type: so a ClassLabel needs an int64 column and
 * every field must be nullable, as `datasets` writes them.
 */

/** The column that holds the image (not a manifest column). */
export const IMAGE_COLUMN = 'image';
/** The manifest column exported as a ClassLabel. */
export const LABEL_COLUMN = 'label';

/** One exported column: its name, Arrow type, and the manifest column it comes from (none for `image`). */
export interface ExportColumn {
  name: string;
  type: arrow.DataType;
  spec: ColumnSpec | null;
}

const IMAGE_TYPE = new arrow.Struct([new arrow.Field('bytes', new arrow.Binary(), true), new arrow.Field('path', new arrow.Utf8(), true)]);

/** The Arrow type `datasets` gives a manifest column's feature (int64 for the ClassLabel, nullable list items). */
function exportType(spec: ColumnSpec): arrow.DataType {
  if (spec.name === LABEL_COLUMN) return new arrow.Int64();
  switch (spec.type) {
    case 'utf8': return new arrow.Utf8();
    case 'int32': return new arrow.Int32();
    case 'float32': return new arrow.Float32();
    case 'bool': return new arrow.Bool();
    case 'list<float32>': return new arrow.List(new arrow.Field('item', new arrow.Float32(), true));
  }
  throw new Error(`export: no Arrow type for manifest column type ${String((spec as ColumnSpec).type)}`);
}

/** The columns of an export of a `kind` manifest, in file order. */
export function exportColumns(kind: ManifestKind): ExportColumn[] {
  return [
    { name: IMAGE_COLUMN, type: IMAGE_TYPE, spec: null },
    ...columnsFor(kind).map((spec) => ({ name: spec.name, type: exportType(spec), spec })),
  ];
}

const VALUE_DTYPE: Record<string, string> = { utf8: 'string', int32: 'int32', float32: 'float32', bool: 'bool' };

/**
 * The `datasets` feature of each column, as `Features.to_dict()` writes it. Lists are written as the older
 * `Sequence`, which every `datasets` version reads (newer ones turn it into `List`).
 */
export function hfFeatures(kind: ManifestKind, classNames: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of exportColumns(kind)) {
    if (!c.spec) out[c.name] = { _type: 'Image' };
    else if (c.name === LABEL_COLUMN) out[c.name] = { names: [...classNames], _type: 'ClassLabel' };
    else if (c.spec.type === 'list<float32>') out[c.name] = { feature: { dtype: 'float32', _type: 'Value' }, _type: 'Sequence' };
    else out[c.name] = { dtype: VALUE_DTYPE[c.spec.type], _type: 'Value' };
  }
  return out;
}

/** The `huggingface` schema metadata value: `{"info": {"features": ...}}`, as `datasets`' ArrowWriter writes it. */
export function hfMetadata(kind: ManifestKind, classNames: readonly string[]): string {
  return JSON.stringify({ info: { features: hfFeatures(kind, classNames) } });
}

/** A row's value for an exported column (optional manifest columns a row leaves out are null). */
export function cellOf(c: ExportColumn, row: Record<string, unknown>, image: { bytes: Uint8Array; path: string }): unknown {
  if (!c.spec) return image;
  const v = row[c.name] ?? null;
  if (v === null) return null;
  return c.name === LABEL_COLUMN ? BigInt(v as number) : v;
}
