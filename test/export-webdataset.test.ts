import { describe, it, expect, beforeAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { columnsFor } from '../manifests/index.ts';
import { createProgress } from '../pipeline/generate/index.ts';
import { exportCorpus, sampleKey } from '../pipeline/export/index.ts';
import { treeHashes } from './generate-fixture.ts';
import { EXPORT_METHODS, exportedOrder, makeExportFixture, manifestRows, readJson, withNulls, type ExportFixture } from './export-fixture.ts';

const quiet = () => createProgress({ quiet: true });
const COLUMNS = columnsFor('corpus').map((c) => c.name);

/** GNU tar's verbose listing: mode, owner/group ids, size, time and name of every member, in archive order. */
function listing(file: string): { mode: string; owner: string; size: number; time: string; name: string }[] {
  const out = execFileSync('tar', ['--list', '--verbose', '--numeric-owner', '--full-time', '--utc', '-f', file], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  return out.trim().split('\n').map((l) => {
    const [mode, owner, size, date, time, name] = l.trim().split(/\s+/);
    return { mode, owner, size: Number(size), time: `${date} ${time}`, name };
  });
}

describe('export --format webdataset', () => {
  let fx: ExportFixture;
  beforeAll(async () => { fx = await makeExportFixture(); });

  it('round-trips: GNU tar extracts every ok row as <key>.png / .cls / .json equal to the corpus file and the manifest row', async () => {
    for (const m of EXPORT_METHODS) {
      const dir = fx.dir(m);
      const s = await exportCorpus({ dir, format: 'webdataset', shardRows: 5, progress: quiet() });
      expect(s.out).toBe(join(dir, 'export', 'webdataset'));
      const want = exportedOrder(await manifestRows(dir));
      expect(s.rows).toBe(want.length);
      // a plain tar reader: extract every shard and walk the members in archive order
      const keys: string[] = [];
      for (const f of s.files) {
        const to = await mkdtemp(join(tmpdir(), 'wds-x-'));
        execFileSync('tar', ['-xf', join(s.out, f.path), '-C', to]);
        const names = listing(join(s.out, f.path)).map((e) => e.name);
        expect((await readdir(to)).sort()).toEqual([...names].sort());
        const shardKeys = [...new Set(names.map((n) => n.slice(0, n.indexOf('.'))))];
        expect(shardKeys.length).toBe(f.rows);
        for (const k of shardKeys) {
          expect(names.filter((n) => n.startsWith(`${k}.`))).toEqual([`${k}.cls`, `${k}.json`, `${k}.png`]);
          const w = want[keys.length];
          keys.push(k);
          expect(k).toBe(sampleKey(w.split, want.filter((r) => r.split === w.split).indexOf(w)));
          expect((await readFile(join(to, `${k}.png`))).equals(await readFile(join(dir, w.image_path!))), w.id).toBe(true);
          expect(await readFile(join(to, `${k}.cls`), 'utf8')).toBe(String(w.label));
          expect(await readJson(join(to, `${k}.json`))).toEqual(withNulls(w, COLUMNS));
        }
      }
      expect(keys.length).toBe(want.length);
      // shards: <split>-NNNNNN.tar, 5 samples each but a split's last one
      for (const split of ['train', 'val']) {
        const mine = s.files.filter((f) => f.split === split);
        const n = want.filter((r) => r.split === split).length;
        expect(mine.map((f) => f.path)).toEqual(mine.map((_, k) => `data/${split}-${String(k).padStart(6, '0')}.tar`));
        expect(mine.map((f) => f.rows)).toEqual(mine.map((_, k) => (k < mine.length - 1 ? 5 : n - 5 * (mine.length - 1))));
      }
    }
  });

  it('writes fixed tar headers: mode 0644, uid/gid 0, mtime 2000-01-01, ustar format', async () => {
    const s = await exportCorpus({ dir: fx.dir('cf-tile'), format: 'webdataset', out: join(fx.tmp, 'wds-h'), shardRows: 5, progress: quiet() });
    const file = join(s.out, s.files[0].path);
    for (const e of listing(file)) {
      expect(e.mode).toBe('-rw-r--r--');
      expect(e.owner).toBe('0/0');
      expect(e.time).toBe('2000-01-01 00:00:00');
    }
    const bytes = await readFile(file);
    expect(bytes.subarray(257, 263).toString('latin1')).toBe('ustar\0');
    expect(bytes.length % 512).toBe(0);
    expect(bytes.subarray(-1024).every((b) => b === 0)).toBe(true); // the end-of-archive marker: two zero blocks
    const card = await readFile(join(s.out, 'README.md'), 'utf8');
    expect(card).toContain('    path: "data/train-*.tar"');
    expect(card).not.toContain('dataset_info:'); // WebDataset features are inferred from the member names
  });

  it('is deterministic: two exports of a corpus are byte-identical, file for file', async () => {
    const dir = fx.dir('f-random');
    const a = await exportCorpus({ dir, format: 'webdataset', out: join(fx.tmp, 'wds-a'), shardRows: 4, progress: quiet() });
    const b = await exportCorpus({ dir, format: 'webdataset', out: join(fx.tmp, 'wds-b'), shardRows: 4, progress: quiet() });
    const ha = await treeHashes(a.out);
    expect(Object.keys(ha).length).toBe(a.files.length + 2);
    expect(await treeHashes(b.out)).toEqual(ha);
    expect((await readJson(join(a.out, 'export.json'))).files.map((f: { sha256: string; path: string }) => [f.path, f.sha256]))
      .toEqual(a.files.map((f) => [f.path, ha[f.path]]));
  });
});
