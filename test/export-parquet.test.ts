import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { columnsFor, type CorpusRow } from '../manifests/index.ts';
import { createProgress } from '../pipeline/generate/index.ts';
import { EXPORT_INFO_FILE, PARQUET_ROW_GROUP_ROWS, exportCorpus, hfFeatures } from '../pipeline/export/index.ts';
import { treeHashes } from './generate-fixture.ts';
import { EXPORT_METHODS, exportedOrder, makeExportFixture, manifestRows, readJson, withNulls, type ExportFixture } from './export-fixture.ts';

const quiet = () => createProgress({ quiet: true });
const COLUMNS = columnsFor('corpus').map((c) => c.name);

/** Rows of every shard of an export, read by DuckDB (not the writer's library), in file then row order. */
async function duckRows(db: DuckDBConnection, out: string): Promise<Record<string, unknown>[]> {
  const r = await db.runAndReadAll(`SELECT * EXCLUDE (file_row_number) FROM read_parquet('${join(out, 'data', '*.parquet')}', filename = true, file_row_number = true) ORDER BY filename, file_row_number`);
  return r.getRowObjectsJS() as Record<string, unknown>[];
}

/**
 * A shard's metadata as DuckDB finds it: the file's key/value pairs, and the Arrow schema metadata that pyarrow (so
 * `datasets`) restores, decoded by apache-arrow from the base64 `ARROW:schema` value DuckDB returns.
 */
async function shardMetadata(db: DuckDBConnection, file: string): Promise<{ kv: Record<string, string>; schema: Record<string, string> }> {
  const r = await db.runAndReadAll(`SELECT key::VARCHAR AS k, value AS v FROM parquet_kv_metadata('${file}')`);
  const kv = Object.fromEntries((r.getRowObjectsJS() as { k: string; v: Buffer }[]).map((x) => [x.k, x.v.toString('utf8')]));
  const reader = arrow.RecordBatchReader.from(Buffer.from(kv['ARROW:schema'], 'base64'));
  reader.open();
  return { kv, schema: Object.fromEntries(reader.schema.metadata) };
}

describe('export --format parquet', () => {
  let fx: ExportFixture;
  let db: DuckDBConnection;
  beforeAll(async () => {
    fx = await makeExportFixture();
    db = await (await DuckDBInstance.create(':memory:')).connect();
  });
  afterAll(() => db?.closeSync());

  it('round-trips: DuckDB reads back every ok row with all manifest columns, and image bytes equal the corpus files', async () => {
    for (const m of EXPORT_METHODS) {
      const dir = fx.dir(m);
      const s = await exportCorpus({ dir, format: 'parquet', shardRows: 5, progress: quiet() });
      expect(s.out).toBe(join(dir, 'export', 'parquet'));
      const manifest = await manifestRows(dir);
      const want = exportedOrder(manifest);
      expect(s.rows).toBe(want.length);
      // image 3 has an empty mask: its rows are skipped and left out, and counted
      const skipped = manifest.filter((r) => r.status === 'skipped').length;
      expect(skipped).toBeGreaterThan(0);
      expect(s.leftOut).toEqual({ skipped, error: 0 });

      const got = await duckRows(db, s.out);
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) {
        const g = got[i] as Record<string, unknown> & { image: { bytes: Buffer; path: string } };
        const w = want[i];
        expect(g.image.path).toBe(w.image_path);
        expect(g.image.bytes.equals(await readFile(join(dir, w.image_path!))), w.id).toBe(true);
        expect(typeof g.label).toBe('bigint');
        const row = Object.fromEntries(COLUMNS.map((n) => [n, n === 'label' ? Number(g[n]) : g[n]]));
        expect(row, w.id).toEqual(withNulls(w, COLUMNS));
      }
      // shards: <split>-NNNNN-of-MMMMM, 5 rows each but a split's last one
      const files = s.files.map((f) => [f.path, f.rows]);
      const perSplit = (split: string) => want.filter((r) => r.split === split).length;
      for (const split of ['train', 'val']) {
        const mine = s.files.filter((f) => f.split === split);
        expect(mine.length).toBe(Math.ceil(perSplit(split) / 5));
        mine.forEach((f, k) => {
          expect(f.path).toBe(`data/${split}-${String(k).padStart(5, '0')}-of-${String(mine.length).padStart(5, '0')}.parquet`);
          expect(f.rows).toBe(k < mine.length - 1 ? 5 : perSplit(split) - 5 * (mine.length - 1));
        });
      }
      expect(files.length).toBe(s.files.length);
    }
  });

  it('carries the Hugging Face features, the corpus provenance and a dataset card', async () => {
    const dir = fx.dir('cf-tile');
    const s = await exportCorpus({ dir, format: 'parquet', shardRows: 5, progress: quiet() });
    const info = await readJson(join(dir, 'corpus.json'));
    const { kv: fileKv, schema: kv } = await shardMetadata(db, join(s.out, s.files[0].path));
    expect(Object.keys(fileKv).sort()).toEqual(['ARROW:schema', 'cfgen']);
    expect(fileKv.cfgen).toBe(kv.cfgen);
    const hf = JSON.parse(kv.huggingface);
    expect(hf).toEqual({ info: { features: hfFeatures('corpus', ['land', 'water']) } });
    expect(hf.info.features.image).toEqual({ _type: 'Image' });
    expect(hf.info.features.label).toEqual({ names: ['land', 'water'], _type: 'ClassLabel' });
    const cfgen = JSON.parse(kv.cfgen);
    expect(cfgen.corpus_id).toBe(info.corpus_id);
    expect(cfgen.config).toEqual(info.config);
    expect(cfgen.tool_version).toBe(info.tool_version);
    expect(JSON.parse(kv.cfgen_export)).toMatchObject({ format: 'cfgen-export', split: 'train', shard: 0, shards: s.files.filter((f) => f.split === 'train').length, rows: 5 });
    // the Image feature's storage type, and a nullable int64 label, as `datasets` requires to apply the features
    const types = await db.runAndReadAll(`DESCRIBE SELECT image, label FROM read_parquet('${join(s.out, s.files[0].path)}')`);
    expect((types.getRowObjectsJS() as { column_type: string }[]).map((t) => t.column_type)).toEqual(['STRUCT(bytes BLOB, path VARCHAR)', 'BIGINT']);
    const groups = await db.runAndReadAll(`SELECT count(DISTINCT row_group_id)::INTEGER AS n FROM parquet_metadata('${join(s.out, s.files[0].path)}')`);
    expect((groups.getRowObjectsJS()[0] as { n: number }).n).toBe(Math.ceil(5 / PARQUET_ROW_GROUP_ROWS));

    const card = await readFile(join(s.out, 'README.md'), 'utf8');
    const yaml = card.split('\n---\n')[0];
    expect(yaml).toMatch(/^---\nlicense: other\ntask_categories:\n- image-classification\n/);
    expect(yaml).toContain('configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: "data/train-*.parquet"\n  - split: val\n    path: "data/val-*.parquet"');
    expect(yaml).toContain("        names:\n          '0': \"land\"\n          '1': \"water\"");
    expect(card).toContain(info.corpus_id);
    expect(card).toContain('**counterfactuals**');
    const exp = await readJson(join(s.out, EXPORT_INFO_FILE));
    expect(exp).toMatchObject({ format: 'cfgen-export', export_format: 'parquet', rows: s.rows, corpus: { corpus_id: info.corpus_id, name: 'cf-tile' } });
    expect(exp.files).toEqual(s.files);
  });

  it('is deterministic: two exports of a corpus are byte-identical, file for file', async () => {
    const dir = fx.dir('f-random');
    const a = await exportCorpus({ dir, format: 'parquet', out: join(fx.tmp, 'pq-a'), shardRows: 4, progress: quiet() });
    const b = await exportCorpus({ dir, format: 'parquet', out: join(fx.tmp, 'pq-b'), shardRows: 4, progress: quiet() });
    const ha = await treeHashes(a.out);
    expect(Object.keys(ha).length).toBe(a.files.length + 2); // shards, README.md, export.json
    expect(await treeHashes(b.out)).toEqual(ha);
    // an export over an earlier one replaces it as a whole
    await exportCorpus({ dir, format: 'parquet', out: a.out, shardRows: 100, progress: quiet() });
    expect(Object.keys(await treeHashes(a.out)).sort()).toEqual(['README.md', 'data/train-00000-of-00001.parquet', 'data/val-00000-of-00001.parquet', 'export.json']);
  });

  it('refuses a folder that is not an earlier export, and an image that differs from its manifest row', async () => {
    const dir = fx.dir('cf-tile');
    const other = join(fx.tmp, 'not-an-export');
    await mkdir(other, { recursive: true });
    await writeFile(join(other, 'notes.txt'), 'mine');
    await expect(exportCorpus({ dir, format: 'parquet', out: other, progress: quiet() })).rejects.toThrow(/not-an-export: the folder holds files but no export\.json[\s\S]*fix: pass an empty or new folder/);
    expect(await readFile(join(other, 'notes.txt'), 'utf8')).toBe('mine');

    const row = exportedOrder(await manifestRows(dir))[2] as CorpusRow;
    const file = join(dir, row.image_path!);
    const good = await readFile(file);
    await writeFile(file, Buffer.concat([good, Buffer.from([0])]));
    try {
      const out = join(fx.tmp, 'pq-bad');
      await expect(exportCorpus({ dir, format: 'parquet', out, progress: quiet() })).rejects.toThrow(/differs from the SHA-256 its manifest row records[\s\S]*fix: run `npx tsx cfgen\.ts verify/);
      await expect(readFile(join(out, EXPORT_INFO_FILE))).rejects.toThrow(); // nothing left behind
    } finally {
      await writeFile(file, good);
    }
  });
});
