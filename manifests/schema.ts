import * as arrow from 'apache-arrow';

/**
 * The manifest contract. Two kinds of manifest, both sharded Arrow IPC files (`*.arrow`):
 *  - a **source** manifest: one row per image of a dataset on disk (written by the dataset adapters);
 *  - a **corpus** manifest: one row per generated image (written by `generate`).
 * The pipeline writes them and the trainer reads them; neither imports the other, only this folder.
 * Column lists below are the single source of truth: writer, reader and docs/manifests.md all derive from them.
 */

export const MANIFEST_FORMAT = 'cfgen-manifest';
export const MANIFEST_FORMAT_VERSION = 1;
/** key of the JSON blob in the Arrow schema's custom metadata */
export const METADATA_KEY = 'cfgen';

export type ColType = 'utf8' | 'int32' | 'float32' | 'bool' | 'list<float32>';
export interface ColumnSpec {
  name: string;
  type: ColType;
  nullable: boolean;
  doc: string;
  /**
   * A column added after format 1 shipped (always nullable). Parts written before it lack the column; so that their
   * rows hash as they always did, a row object leaves an optional column out when it is null (reader, writer and
   * content hashes all follow this), instead of carrying `null`.
   */
  optional?: true;
}

export const SOURCE_COLUMNS = [
  { name: 'id', type: 'utf8', nullable: false, doc: 'unique image id within the dataset' },
  { name: 'split', type: 'utf8', nullable: false, doc: 'train | val | test (CCT: train | cis_val | cis_test | trans_test)' },
  { name: 'label', type: 'int32', nullable: false, doc: 'class index into metadata.class_names' },
  { name: 'class_name', type: 'utf8', nullable: false, doc: 'class name' },
  { name: 'path', type: 'utf8', nullable: false, doc: 'image path relative to the dataset root' },
  { name: 'mask_path', type: 'utf8', nullable: true, doc: 'segmentation mask path relative to the dataset root (null: none)' },
  { name: 'mask_format', type: 'utf8', nullable: true, doc: 'png-nonzero | npy | nofg-diff (IN-9 train: foreground = no_fg black where the original is not)' },
  { name: 'boxes', type: 'list<float32>', nullable: true, doc: 'object boxes, flat [x, y, w, h, ...] in stored-image pixels (null: none)' },
  { name: 'group', type: 'utf8', nullable: true, doc: 'group key for group metrics, e.g. "y=1,place=0" (Waterbirds), the CCT location, the IN-9 test variant' },
  { name: 'place', type: 'int32', nullable: true, doc: 'Waterbirds place: 0 land, 1 water' },
  { name: 'location', type: 'utf8', nullable: true, doc: 'CCT camera location' },
  { name: 'variant', type: 'utf8', nullable: true, doc: 'IN-9 test variant: original | mixed_same | mixed_rand | mixed_next | only_fg | no_fg' },
  { name: 'width', type: 'int32', nullable: false, doc: 'stored image width in pixels' },
  { name: 'height', type: 'int32', nullable: false, doc: 'stored image height in pixels' },
  { name: 'status', type: 'utf8', nullable: false, doc: 'ok | error' },
  { name: 'error', type: 'utf8', nullable: true, doc: 'what is wrong with this row and how to fix it (status = error)' },
] as const satisfies readonly ColumnSpec[];

export const CORPUS_COLUMNS = [
  { name: 'id', type: 'utf8', nullable: false, doc: 'unique id: <source_id>/<method>/<variant>' },
  { name: 'source_id', type: 'utf8', nullable: false, doc: 'id of the source image (source manifest)' },
  { name: 'source_path', type: 'utf8', nullable: false, doc: 'source image path relative to the dataset root' },
  { name: 'image_path', type: 'utf8', nullable: true, doc: 'generated image path relative to the corpus folder (null when status != ok)' },
  { name: 'split', type: 'utf8', nullable: false, doc: 'split of the source image' },
  { name: 'label', type: 'int32', nullable: false, doc: 'class index y of the source image' },
  { name: 'class_name', type: 'utf8', nullable: false, doc: 'class name of y' },
  { name: 'non_y', type: 'bool', nullable: false, doc: 'true for counterfactuals: the model must no longer be sure of class y' },
  { name: 'kind', type: 'utf8', nullable: false, doc: 'cf | f' },
  { name: 'method', type: 'utf8', nullable: false, doc: 'infill method: grey | random | shuffle | tile | cagan | mixed-rand ...' },
  { name: 'params', type: 'utf8', nullable: false, doc: 'the method parameters, as canonical JSON' },
  { name: 'variant', type: 'int32', nullable: false, doc: 'draw index k in [0, VARIANTS)' },
  { name: 'seed', type: 'int32', nullable: false, doc: 'run seed; the item rng is rngFor(seed, source_id, <full method name, e.g. cf-random>, variant)' },
  { name: 'mask_kind', type: 'utf8', nullable: false, doc: 'box | seg: which mask the infill used' },
  { name: 'sha256', type: 'utf8', nullable: true, doc: 'SHA-256 of the generated file bytes' },
  { name: 'width', type: 'int32', nullable: false, doc: 'generated image width' },
  { name: 'height', type: 'int32', nullable: false, doc: 'generated image height' },
  { name: 'status', type: 'utf8', nullable: false, doc: 'ok | skipped | error (skipped: e.g. empty mask, mask covers everything)' },
  { name: 'error', type: 'utf8', nullable: true, doc: 'reason when status != ok' },
  // Added so a consumer needs no join with the source manifest (optional: older parts lack them, see ColumnSpec).
  { name: 'box', type: 'list<float32>', nullable: true, optional: true, doc: 'the object\'s box [x, y, w, h] in generated-image pixels: the CF hole (union of the annotated boxes, else the segmentation\'s bounding rectangle; resized so it covers the object); null when the source image could not be read' },
  { name: 'mask_path', type: 'utf8', nullable: true, optional: true, doc: 'the source\'s segmentation mask, relative to the dataset root (metadata.dataset_root); null: none' },
  { name: 'mask_format', type: 'utf8', nullable: true, optional: true, doc: 'how to read mask_path: png-nonzero | npy | nofg-diff (as in the source manifest)' },
] as const satisfies readonly ColumnSpec[];

/**
 * An **eval** manifest (`cfgen stress-test`): IN-9-style evaluation variants of a dataset's test images, one row per
 * source image × variant. Same file layout, done markers and corpus id as a corpus, so `verify` checks it too.
 */
export const EVAL_COLUMNS = [
  { name: 'id', type: 'utf8', nullable: false, doc: 'unique id: <source_id>/<variant>' },
  { name: 'source_id', type: 'utf8', nullable: false, doc: 'id of the source image whose object is shown (source manifest)' },
  { name: 'source_path', type: 'utf8', nullable: false, doc: 'source image path relative to the dataset root' },
  { name: 'image_path', type: 'utf8', nullable: true, doc: 'generated image path relative to the corpus folder (null when status != ok)' },
  { name: 'split', type: 'utf8', nullable: false, doc: 'split of the source image' },
  { name: 'label', type: 'int32', nullable: false, doc: 'class index y of the object shown' },
  { name: 'class_name', type: 'utf8', nullable: false, doc: 'class name of y' },
  { name: 'variant', type: 'utf8', nullable: false, doc: 'original | only_fg | no_fg | only_bg_b | only_bg_t | mixed_same | mixed_rand | mixed_next | attr_flip' },
  { name: 'donor_id', type: 'utf8', nullable: true, doc: 'mixed_* and attr_flip: source id of the image the background comes from' },
  { name: 'donor_label', type: 'int32', nullable: true, doc: 'class index of the donor image' },
  { name: 'place', type: 'int32', nullable: true, doc: 'Waterbirds place of the background shown (the donor\'s when swapped; null when there is none)' },
  { name: 'location', type: 'utf8', nullable: true, doc: 'CCT location of the background shown (the donor\'s when swapped; null when there is none)' },
  { name: 'seed', type: 'int32', nullable: false, doc: 'seed of the donor draws: rngFor(seed, source_id, \'stress-test\', variant, \'donors\')' },
  { name: 'mask_kind', type: 'utf8', nullable: false, doc: 'seg | box: the object mask that decides which pixels are object' },
  { name: 'sha256', type: 'utf8', nullable: true, doc: 'SHA-256 of the generated file bytes' },
  { name: 'width', type: 'int32', nullable: false, doc: 'generated image width' },
  { name: 'height', type: 'int32', nullable: false, doc: 'generated image height' },
  { name: 'status', type: 'utf8', nullable: false, doc: 'ok | skipped | error (skipped: e.g. no donor of class y+1 in the split)' },
  { name: 'error', type: 'utf8', nullable: true, doc: 'reason when status != ok' },
] as const satisfies readonly ColumnSpec[];

type TsOf<T extends ColType> = T extends 'utf8' ? string : T extends 'bool' ? boolean : T extends 'list<float32>' ? number[] : number;
type ValueOf<K extends ColumnSpec> = K['nullable'] extends true ? TsOf<K['type']> | null : TsOf<K['type']>;
type RowOf<C extends readonly ColumnSpec[]> = {
  [K in C[number] as K extends { optional: true } ? never : K['name']]: ValueOf<K>;
} & {
  [K in C[number] as K extends { optional: true } ? K['name'] : never]?: ValueOf<K>;
};

export type SourceRow = RowOf<typeof SOURCE_COLUMNS>;
export type CorpusRow = RowOf<typeof CORPUS_COLUMNS>;
/** One row of an eval (stress-test) manifest. */
export type EvalRow = RowOf<typeof EVAL_COLUMNS>;
export type ManifestKind = 'source' | 'corpus' | 'eval';

/** The JSON stored under the schema metadata key `cfgen`. */
export interface ManifestMetadata {
  format: typeof MANIFEST_FORMAT;
  format_version: number;
  kind: ManifestKind;
  dataset: string;
  class_names: string[];
  tool_version: string;
  seed: number;
  /** the full configuration that produced the manifest */
  config: Record<string, unknown>;
  /** corpus only: digest of the source manifest it was generated from */
  source_digest?: string;
  /** corpus only: content id; two corpora with the same id hold the same images */
  corpus_id?: string;
  /**
   * corpus and eval: the dataset folder that rows' `source_path` and `mask_path` are relative to, as the source
   * manifest records roots (relative to the cfgen repository when inside it, else absolute). Not part of the config,
   * so it never changes a corpus id.
   */
  dataset_root?: string;
  [extra: string]: unknown;
}

/**
 * `<corpus>/corpus.json`, written last by `generate` (or `finalize`): a corpus without one is unfinished. `corpus_id`
 * is SHA-256 of the canonical JSON `{tool_version, config, source_digest, shards: [content hash of each shard]}`
 * (reader.ts `corpusIdFor`), so the file pins the exact set of `shards` parts `manifest/part-NNNNN.arrow`.
 */
export interface CorpusInfo {
  corpus_id: string;
  tool_version: string;
  dataset: string;
  /** the corpus folder name, e.g. cf-tile */
  name: string;
  kind?: string;
  config: Record<string, unknown>;
  config_hash?: string;
  source_digest: string;
  /** how many parts: exactly part-00000 … part-(shards−1) */
  shards: number;
  counts?: { ok: number; skipped: number; error: number };
  /** each part's content hash, in order (older corpora: absent, and the `part-NNNNN.done` markers' `content_hash` count) */
  shard_hashes?: string[];
  /** the dataset folder rows are relative to (see ManifestMetadata.dataset_root) */
  dataset_root?: string;
  [extra: string]: unknown;
}

/**
 * The folders of a generated corpus (`<corpus>/manifest/`, `<corpus>/state/`). `manifest/` holds only the Arrow
 * parts, so any Arrow reader can open the folder as a dataset; `state/` holds generation state (done markers, shard
 * claims, the plan), which no consumer reads. Corpora written before `state/` kept their done markers in `manifest/`;
 * readers look there when `state/` has none, and the next `generate` or `finalize` moves them.
 */
export const CORPUS_LAYOUT = { manifest: 'manifest', state: 'state', info: 'corpus.json', images: 'images' } as const;

/** The columns of a manifest kind, in file order. */
export function columnsFor(kind: ManifestKind): readonly ColumnSpec[] {
  return kind === 'source' ? SOURCE_COLUMNS : kind === 'eval' ? EVAL_COLUMNS : CORPUS_COLUMNS;
}

/** The Arrow type of a column type. */
export function arrowType(t: ColType): arrow.DataType {
  switch (t) {
    case 'utf8': return new arrow.Utf8();
    case 'int32': return new arrow.Int32();
    case 'float32': return new arrow.Float32();
    case 'bool': return new arrow.Bool();
    case 'list<float32>': return new arrow.List(new arrow.Field('item', new arrow.Float32(), false));
  }
}

/** The Arrow schema of a manifest kind, with `metadata` under the `cfgen` key. */
export function arrowSchema(kind: ManifestKind, metadata: ManifestMetadata): arrow.Schema {
  const fields = columnsFor(kind).map((c) => new arrow.Field(c.name, arrowType(c.type), c.nullable));
  return new arrow.Schema(fields, new Map([[METADATA_KEY, JSON.stringify(metadata)]]));
}
