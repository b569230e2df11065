import { describe, it, expect } from 'vitest';
import * as arrow from 'apache-arrow';
import { createHash } from 'node:crypto';
import { encodeManifest } from '../manifests/writer.ts';
import { arrowSchema, arrowType, columnsFor, TOOL_VERSION, type ManifestKind, type ManifestMetadata } from '../manifests/index.ts';

/**
 * encodeManifest builds its columns straight into Arrow buffers (manifests/writer.ts columnData). Every corpus id
 * hashes these bytes, so they must equal what apache-arrow's own builders (vectorFromArray) write, for every column
 * type and for nulls, empty strings, non-ASCII text, empty lists and all-null columns.
 */
function referenceEncode(kind: ManifestKind, metadata: ManifestMetadata, rows: Record<string, unknown>[]): Uint8Array {
  const schema = arrowSchema(kind, metadata);
  const children = columnsFor(kind).map((c) => arrow.vectorFromArray(rows.map((r) => r[c.name] ?? null), arrowType(c.type) as arrow.DataType).data[0]);
  const batch = new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: rows.length, nullCount: 0, children }));
  return arrow.tableToIPC(new arrow.Table(schema, rows.length ? [batch] : []), 'file');
}

/** Deterministic pseudo-random rows of a manifest kind (mulberry32). */
function randomRows(kind: ManifestKind, n: number, seed: number, allNull: Set<string>): Record<string, unknown>[] {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const words = ['', 'a', 'train', 'ünïcödé 🐦', 'with\nnewline', 'x'.repeat(300), '"quoted",comma'];
  return Array.from({ length: n }, () => {
    const r: Record<string, unknown> = {};
    for (const c of columnsFor(kind)) {
      if (allNull.has(c.name) || (c.nullable && rnd() < 0.3)) { r[c.name] = null; continue; }
      switch (c.type) {
        case 'utf8': r[c.name] = words[Math.floor(rnd() * words.length)] + (rnd() < 0.5 ? String(Math.floor(rnd() * 1e6)) : ''); break;
        case 'int32': r[c.name] = Math.floor((rnd() - 0.5) * 2 ** 31); break;
        case 'float32': r[c.name] = (rnd() - 0.5) * 1e4; break;
        case 'bool': r[c.name] = rnd() < 0.5; break;
        case 'list<float32>': r[c.name] = Array.from({ length: Math.floor(rnd() * 9) }, () => (rnd() - 0.5) * 640); break;
      }
    }
    return r;
  });
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('encodeManifest', () => {
  for (const kind of ['source', 'corpus', 'eval'] as const) {
    it(`writes the same bytes as apache-arrow's builders (${kind})`, () => {
      const metadata: ManifestMetadata = { format: 'cfgen-manifest', format_version: 1, kind, dataset: 'd', class_names: ['a', 'b'], tool_version: TOOL_VERSION, seed: 1, config: {} };
      const nullable = columnsFor(kind).filter((c) => c.nullable).map((c) => c.name);
      const cases: [number, Set<string>][] = [[0, new Set()], [1, new Set()], [7, new Set()], [8, new Set()], [9, new Set()], [1000, new Set()], [65, new Set(nullable)]];
      for (const [n, allNull] of cases) {
        const rows = randomRows(kind, n, n * 31 + kind.length, allNull);
        expect(sha(encodeManifest(kind, metadata, rows as never)), `${kind}, ${n} rows`).toBe(sha(referenceEncode(kind, metadata, rows)));
      }
    });
  }

  it('names the column and the row of a value of the wrong type', () => {
    const metadata: ManifestMetadata = { format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset: 'd', class_names: ['a'], tool_version: TOOL_VERSION, seed: 1, config: {} };
    const rows = randomRows('source', 3, 5, new Set());
    rows[2].width = '32';
    expect(() => encodeManifest('source', metadata, rows as never)).toThrow(/column "width", row 2: expected a number, got "32"/);
  });
});
