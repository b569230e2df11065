import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { ManifestWriter, openManifest, readSourceManifest, manifestDigest, rngFor, TOOL_VERSION, type ManifestMetadata, type SourceRow } from '../manifests/index.ts';

const meta: ManifestMetadata = {
  format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset: 'toy', class_names: ['a', 'b'],
  tool_version: TOOL_VERSION, seed: 7, config: { size: 32 },
};

function row(i: number): SourceRow {
  return {
    id: `img${i}`, split: i % 2 ? 'train' : 'test', label: i % 2, class_name: i % 2 ? 'b' : 'a', path: `images/${i}.png`,
    mask_path: i === 1 ? null : `masks/${i}.png`, mask_format: i === 1 ? null : 'png-nonzero',
    boxes: i === 2 ? null : [i, 1, 2.5, 3], group: `y=${i % 2}`, place: i % 2, location: null, variant: null,
    width: 32, height: 24, status: 'ok', error: null,
  };
}

describe('manifest contract', () => {
  it('round-trips rows and metadata across shards, byte-identically on rewrite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mf-'));
    const write = async (d: string) => {
      const w = new ManifestWriter(d, 'source', meta, { rowsPerShard: 2, prefix: 'source' });
      for (let i = 0; i < 5; i++) await w.write(row(i));
      return w.close();
    };
    const written = await write(dir);
    expect(written.map((s) => s.rows)).toEqual([2, 2, 1]);
    expect((await readdir(dir)).sort()).toEqual(['source-00000.arrow', 'source-00001.arrow', 'source-00002.arrow']);
    const { metadata, rows } = await readSourceManifest(dir);
    expect(metadata).toEqual(meta);
    expect(rows).toEqual([0, 1, 2, 3, 4].map(row));
    const dir2 = await mkdtemp(join(tmpdir(), 'mf-'));
    await write(dir2);
    expect(await manifestDigest(dir2)).toBe(await manifestDigest(dir));
  });

  it('is readable as plain Arrow with the documented types', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mf-'));
    const w = new ManifestWriter(dir, 'source', meta, { prefix: 'source' });
    await w.write(row(0));
    await w.close();
    const t = arrow.tableFromIPC(await readFile(join(dir, 'source-00000.arrow')));
    expect(t.schema.fields.map((f) => `${f.name}:${f.type}`)).toContain('boxes:List<Float32>');
    expect(t.getChild('label')!.type.toString()).toBe('Int32');
    expect(JSON.parse(t.schema.metadata.get('cfgen')!).class_names).toEqual(['a', 'b']);
  });

  it('rejects a row missing a required column', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mf-'));
    const w = new ManifestWriter(dir, 'source', meta);
    await w.write({ ...row(0), path: null as unknown as string });
    await expect(w.close()).rejects.toThrow(/column "path" is required/);
  });

  it('says what to run when the manifest is missing', async () => {
    await expect(openManifest('/nonexistent/x')).rejects.toThrow(/make dataset/);
  });

  it('rngFor is a pure function of its key', () => {
    const a = rngFor(1, 'img', 'tile', 0), b = rngFor(1, 'img', 'tile', 0), c = rngFor(1, 'img', 'tile', 1);
    const xa = [a.next(), a.next(), a.int(10)], xb = [b.next(), b.next(), b.int(10)];
    expect(xa).toEqual(xb);
    expect(c.next()).not.toBe(xa[0]);
    const r = rngFor('stats');
    let s = 0, s2 = 0;
    for (let i = 0; i < 20000; i++) { const z = r.normal(); s += z; s2 += z * z; }
    expect(Math.abs(s / 20000)).toBeLessThan(0.03);
    expect(Math.abs(s2 / 20000 - 1)).toBeLessThan(0.05);
  });
});
