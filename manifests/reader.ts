import * as arrow from 'apache-arrow';
import fg from 'fast-glob';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CORPUS_LAYOUT, METADATA_KEY, MANIFEST_FORMAT, columnsFor, type CorpusInfo, type ManifestMetadata, type SourceRow, type CorpusRow, type ManifestKind } from './schema.ts';
import { UserError } from './errors.ts';
import { sha256Hex, stableStringify } from './io.ts';
import { shardName } from './writer.ts';

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

/**
 * Rows as plain objects with the kind's columns. An optional column (schema.ts ColumnSpec.optional) is left out of
 * the object when it is null or when the part predates it, so a part written before the column existed yields the
 * same objects, hence the same content hash, as it always did.
 */
function rowsOf<R>(table: arrow.Table | arrow.RecordBatch, kind: ManifestKind): R[] {
  const specs = columnsFor(kind);
  const names = specs.map((c) => c.name);
  const cols = names.map((n) => table.getChild(n));
  const interned = specs.map((c) => (c.type === 'utf8' ? new Interner() : null));
  const out: R[] = new Array(table.numRows);
  for (let i = 0; i < table.numRows; i++) {
    const row: Record<string, unknown> = {};
    for (let j = 0; j < names.length; j++) {
      const got = cols[j]?.get(i);
      const v = got instanceof arrow.Vector ? Array.from(got.toArray() as Float32Array) : interned[j] && got != null ? interned[j]!.of(got as string) : got ?? null;
      if (v === null && specs[j].optional) continue;
      row[names[j]] = v;
    }
    out[i] = row as R;
  }
  return out;
}

/**
 * One copy of each repeated string of a column. Arrow decodes a new string per cell, so 100k rows held 100k copies
 * of "train", of each class name and of each status: about 100 bytes per row of a source manifest. Columns of
 * mostly distinct values (ids, paths) stop being interned once they show more than `limit` distinct values.
 */
class Interner {
  private seen: Map<string, string> | null = new Map();
  constructor(private readonly limit = 4096) {}
  of(s: string): string {
    if (!this.seen) return s;
    const had = this.seen.get(s);
    if (had !== undefined) return had;
    if (this.seen.size >= this.limit) { this.seen = null; return s; }
    this.seen.set(s, s);
    return s;
  }
}

/** What to do about a shard that does not decode, when the caller knows nothing better. */
const REBUILD_FIX = 'rebuild it: `make dataset` for a source manifest, `npx tsx cfgen.ts generate … --force` for a corpus';

/**
 * A shard's bytes opened as Arrow record batches, with its metadata. Arrow reports a truncated file as a bare
 * TypeError deep in its footer parser; here every decoding failure becomes a UserError naming the file.
 */
function openShardBytes(bytes: Uint8Array, file: string, fix: string): { metadata: ManifestMetadata; batches: () => Generator<arrow.RecordBatch> } {
  const broken = (e: unknown): UserError =>
    new UserError(`manifest shard cannot be decoded: it is truncated or not an Arrow IPC file (${(e as Error).message})`, { file, fix });
  let reader: arrow.RecordBatchReader;
  try {
    reader = arrow.RecordBatchReader.from(bytes);
    reader.open();
  } catch (e) {
    throw broken(e);
  }
  // Too few bytes for even a schema: Arrow returns an empty reader instead of failing.
  if (!reader.schema) throw broken(new Error(`${bytes.length} bytes, no schema`));
  const metadata = decodeMetadata(reader.schema, file);
  return {
    metadata,
    *batches() {
      const it = reader[Symbol.iterator]();
      for (;;) {
        let next: IteratorResult<arrow.RecordBatch>;
        try { next = it.next(); } catch (e) { throw broken(e); }
        if (next.done) return;
        yield next.value;
      }
    },
  };
}

/** A manifest opened for reading: its metadata (from the first shard), its shard files and a row stream. */
export interface OpenManifest<R> {
  metadata: ManifestMetadata;
  shards: string[];
  /** Stream the rows shard by shard, batch by batch: memory is bounded by one record batch. */
  rows(): AsyncGenerator<R>;
}

/** Open a manifest (a shard file, or a folder of `<prefix>-NNNNN.arrow` shards); metadata comes from the first shard. */
export async function openManifest<R = SourceRow | CorpusRow>(pathOrDir: string, opts: { prefix?: string } = {}): Promise<OpenManifest<R>> {
  const shards = await manifestShards(pathOrDir, opts.prefix);
  const { metadata } = openShardBytes(await readFile(shards[0]), shards[0], REBUILD_FIX);
  return {
    metadata,
    shards,
    async *rows() {
      for (const shard of shards) {
        for (const batch of openShardBytes(await readFile(shard), shard, REBUILD_FIX).batches()) yield* rowsOf<R>(batch, metadata.kind);
      }
    },
  };
}

/** All rows of a source manifest folder (`source-NNNNN.arrow`), with its metadata; a UserError if it is not a source manifest. */
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

// ---- corpora: complete or refused -------------------------------------------------------------------------------

/** The file `generate` writes last in a corpus folder; without it the corpus is unfinished. */
export const CORPUS_INFO_FILE = CORPUS_LAYOUT.info;

/** Manifest part `index` of the corpus in `dir`: `<dir>/manifest/part-NNNNN.arrow`. */
export const corpusPartPath = (dir: string, index: number): string => join(dir, CORPUS_LAYOUT.manifest, shardName('part', index));

/** Where shard `index`'s done marker is written: `<dir>/state/part-NNNNN.done`. */
export const doneMarkerPath = (dir: string, index: number): string => join(dir, CORPUS_LAYOUT.state, shardName('part', index).replace(/\.arrow$/, '.done'));

/** Where corpora written before `state/` existed kept the marker: beside the part, `<dir>/manifest/part-NNNNN.done`. */
export const legacyDoneMarkerPath = (dir: string, index: number): string => corpusPartPath(dir, index).replace(/\.arrow$/, '.done');

/**
 * The text of shard `index`'s done marker: from `state/`, else (a corpus written before `state/` existed) from beside
 * the part; null when neither exists. Other read errors (permissions, I/O) propagate.
 */
export async function readDoneMarkerText(dir: string, index: number): Promise<{ file: string; text: string } | null> {
  for (const file of [doneMarkerPath(dir, index), legacyDoneMarkerPath(dir, index)]) {
    try {
      return { file, text: await readFile(file, 'utf8') };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return null;
}

/**
 * SHA-256 of the canonical JSON of rows (`stableStringify(rows)`), fed one row at a time so a shard is hashed as it
 * streams. This is the content hash done markers and corpus ids record (docs/manifests.md, "Corpus id").
 */
class ContentHasher {
  private readonly h = createHash('sha256').update('[');
  private n = 0;
  add(row: unknown): void { this.h.update((this.n++ ? ',' : '') + stableStringify(row)); }
  digest(): string { return this.h.update(']').digest('hex'); }
}

/** The content hash of a shard's rows, as its done marker and the corpus id record it. */
export function shardContentHash(rows: readonly unknown[]): string {
  const h = new ContentHasher();
  for (const r of rows) h.add(r);
  return h.digest();
}

/** The corpus id of corpus.json: SHA-256 of `{tool_version, config, source_digest, shards}` as canonical JSON. */
export function corpusIdFor(toolVersion: string, config: Record<string, unknown>, sourceDigest: string, shardHashes: readonly string[]): string {
  return sha256Hex(stableStringify({ tool_version: toolVersion, config, source_digest: sourceDigest, shards: shardHashes }));
}

/** `missing`: nothing there; `unfinished`: parts but no corpus.json (interrupted, or still being written); `complete`: corpus.json is there (openCorpus checks that the parts agree). */
export type CorpusState = 'missing' | 'unfinished' | 'complete';

async function arrowFilesIn(manifestDir: string): Promise<string[]> {
  try {
    return (await readdir(manifestDir)).filter((f) => f.endsWith('.arrow')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** Where a corpus folder stands, cheaply (no shard is read). */
export async function corpusState(dir: string): Promise<CorpusState> {
  try {
    await stat(join(dir, CORPUS_INFO_FILE));
    return 'complete';
  } catch {
    return (await arrowFilesIn(join(dir, CORPUS_LAYOUT.manifest))).length ? 'unfinished' : 'missing';
  }
}

/** A complete corpus opened for reading: corpus.json, and rows that are checked against it as they stream. */
export interface OpenCorpus<R = CorpusRow> extends OpenManifest<R> {
  /** the corpus folder */
  dir: string;
  info: CorpusInfo;
}

/** The hash shard `index`'s done marker records, or null when it has none (the corpus id check still covers the part). */
async function doneMarkerHash(dir: string, index: number): Promise<string | null> {
  try {
    const found = await readDoneMarkerText(dir, index);
    const m = (found ? JSON.parse(found.text) : null) as { format?: string; content_hash?: unknown } | null;
    return m?.format === 'cfgen-shard-done' && typeof m.content_hash === 'string' ? m.content_hash : null;
  } catch {
    return null;
  }
}

function validInfo(v: unknown): v is CorpusInfo {
  const i = v as CorpusInfo;
  return typeof i === 'object' && i !== null && typeof i.corpus_id === 'string' && i.corpus_id.length > 0 && Number.isInteger(i.shards)
    && i.shards >= 1 && typeof i.tool_version === 'string' && typeof i.source_digest === 'string' && typeof i.config === 'object' && i.config !== null;
}

const listed = (names: string[]): string => (names.length > 5 ? `${names.slice(0, 5).join(', ')} … (${names.length})` : names.join(', '));

/**
 * Open a generated corpus (`<dir>/corpus.json` + `<dir>/manifest/part-NNNNN.arrow`) only if it is complete and
 * of one piece; anything else is a UserError naming the file and the fix, never a silently smaller or mixed corpus:
 *  - no corpus.json: unfinished (or missing);
 *  - a part corpus.json lists is missing, or a `*.arrow` it does not list is there;
 *  - a part does not decode (truncated), or is stamped with another corpus_id, kind or dataset.
 * The row stream then checks each part's rows against corpus.json's `shard_hashes` (older corpora: the done markers'
 * content hashes, from `state/` or, written before it existed, from beside the parts), that no part changed since it
 * was opened, and, at the end, the corpus id itself. Files other than `*.arrow` are never read from `manifest/`.
 */
export async function openCorpus<R = CorpusRow>(dir: string, opts: { kind?: ManifestKind } = {}): Promise<OpenCorpus<R>> {
  const kind = opts.kind ?? 'corpus';
  const name = basename(dir);
  const infoFile = join(dir, CORPUS_INFO_FILE);
  const manifestDir = join(dir, CORPUS_LAYOUT.manifest);
  const generate = `npx tsx cfgen.ts generate --source ${join(dirname(dir), 'source')} --methods ${name}`;
  const fix = `see what is wrong with \`npx tsx cfgen.ts verify ${dir}\`, then regenerate it: ${generate} --force`;
  let text: string;
  try {
    text = await readFile(infoFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    const parts = await arrowFilesIn(manifestDir);
    if (!parts.length) throw new UserError(`corpus ${name} is missing (no ${CORPUS_INFO_FILE}, no manifest parts)`, { file: dir, fix: `generate it: ${generate}` });
    throw new UserError(`corpus ${name} is unfinished: ${parts.length} manifest part(s) but no ${CORPUS_INFO_FILE} (its generation was interrupted, or is still running)`, {
      file: dir, fix: `finish it (generation resumes where it stopped): ${generate}; if a generate is running on it, wait for it to end`,
    });
  }
  let info: unknown;
  try { info = JSON.parse(text); } catch { info = null; }
  if (!validInfo(info)) throw new UserError(`${CORPUS_INFO_FILE} is not a corpus description (corpus_id, shards, config, source_digest, tool_version)`, { file: infoFile, fix });

  const expected = Array.from({ length: info.shards }, (_, i) => shardName('part', i));
  const present = await arrowFilesIn(manifestDir);
  const missing = expected.filter((f) => !present.includes(f));
  const extra = present.filter((f) => !expected.includes(f));
  if (missing.length) {
    throw new UserError(`corpus ${name} is incomplete: ${CORPUS_INFO_FILE} lists ${info.shards} manifest parts and ${missing.length} of them are missing (${listed(missing)})`, { file: manifestDir, fix });
  }
  if (extra.length) {
    throw new UserError(`corpus ${name} has manifest parts that ${CORPUS_INFO_FILE} does not list (${listed(extra)}): a mix of two generations`, { file: manifestDir, fix });
  }
  const shards = expected.map((f) => join(manifestDir, f));
  const digests: string[] = [];
  let metadata: ManifestMetadata | null = null;
  for (const shard of shards) {
    const bytes = await readFile(shard);
    const m = openShardBytes(bytes, shard, fix).metadata;
    if (m.kind !== kind) throw new UserError(`expected a ${kind} manifest part, found a ${m.kind} one`, { file: shard, fix });
    if (m.corpus_id !== info.corpus_id) {
      throw new UserError(`part belongs to another corpus (its corpus_id is ${m.corpus_id ?? 'not stamped'}, ${CORPUS_INFO_FILE} says ${info.corpus_id}): a mix of two generations`, { file: shard, fix });
    }
    if (m.dataset !== info.dataset) throw new UserError(`part belongs to dataset "${m.dataset}", ${CORPUS_INFO_FILE} says "${info.dataset}"`, { file: shard, fix });
    digests.push(sha256Hex(bytes));
    metadata ??= m;
  }
  const hashes = Array.isArray(info.shard_hashes) && info.shard_hashes.length === shards.length
    ? info.shard_hashes : await Promise.all(shards.map((_, i) => doneMarkerHash(dir, i)));
  const corpus = info;
  return {
    dir, info: corpus, metadata: metadata!, shards,
    async *rows() {
      const got: string[] = [];
      for (let i = 0; i < shards.length; i++) {
        const bytes = await readFile(shards[i]);
        if (sha256Hex(bytes) !== digests[i]) {
          throw new UserError('manifest part changed while it was being read (is a generate rewriting this corpus?)', { file: shards[i], fix: 'wait for that generation to end, then run again' });
        }
        const h = new ContentHasher();
        for (const batch of openShardBytes(bytes, shards[i], fix).batches()) {
          for (const row of rowsOf<R>(batch, kind)) { h.add(row); yield row; }
        }
        got.push(h.digest());
        if (hashes[i] && got[i] !== hashes[i]) {
          throw new UserError('the rows of this part do not match the content hash recorded for it (edited, or from another generation)', { file: shards[i], fix });
        }
      }
      if (corpusIdFor(corpus.tool_version, corpus.config, corpus.source_digest, got) !== corpus.corpus_id) {
        throw new UserError(`the rows of corpus ${name} do not hash to its corpus id (a part was edited or replaced)`, { file: infoFile, fix });
      }
    },
  };
}
