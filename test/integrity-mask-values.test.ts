import { describe, it, expect } from 'vitest';
import sharp from 'sharp';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSourceManifest } from '../pipeline/datasets/index.ts';
import { canonicalMaskValues, loadSegMask, maskValueTable } from '../manifests/masks.ts';
import { GENERATE_DEFAULTS, createProgress, runGenerate } from '../pipeline/generate/index.ts';
import { openCorpus, type CorpusRow } from '../manifests/index.ts';

const S = 24;

/**
 * An Oxford-IIIT-Pet-style trimap: 2 background everywhere, the pet (value 1) a rectangle at [x, y, w, h], with a
 * one-pixel border ring (value 3) around it.
 */
function trimap(x: number, y: number, w: number, h: number): Buffer {
  const m = Buffer.alloc(S * S, 2);
  for (let r = y - 1; r <= y + h; r++) for (let c = x - 1; c <= x + w; c++) m[r * S + c] = 3;
  for (let r = y; r < y + h; r++) for (let c = x; c < x + w; c++) m[r * S + c] = 1;
  return m;
}

// an 8-bit grey PNG, as trimaps and label maps are stored
const grey = (data: Buffer) => sharp(data, { raw: { width: S, height: S, channels: 1 } }).toColourspace('b-w').png().toBuffer();

/** folder: dataset, train/{a,b}/i.png with trimap masks; the pet of image i at [4 + i, 5, 6, 8]. */
async function trimapDataset(n = 4): Promise<{ root: string; corporaRoot: string }> {
  const tmp = await mkdtemp(join(tmpdir(), 'mask-values-'));
  const root = join(tmp, 'pets');
  for (let i = 0; i < n; i++) {
    const cls = i % 2 ? 'b' : 'a';
    await mkdir(join(root, 'train', cls), { recursive: true });
    await mkdir(join(root, 'masks', 'train', cls), { recursive: true });
    const img = Buffer.alloc(S * S * 3);
    for (let p = 0; p < img.length; p++) img[p] = (p * 7 + i * 31) % 251;
    await writeFile(join(root, 'train', cls, `${i}.png`), await sharp(img, { raw: { width: S, height: S, channels: 3 } }).png().toBuffer());
    await writeFile(join(root, 'masks', 'train', cls, `${i}.png`), await grey(trimap(4 + i, 5, 6, 8)));
  }
  return { root, corporaRoot: join(tmp, 'corpora') };
}

async function rowsOf(dir: string): Promise<CorpusRow[]> {
  const c = await openCorpus(dir);
  const out: CorpusRow[] = [];
  for await (const r of c.rows()) out.push(r);
  return out;
}

describe('declared mask values (trimaps, label maps)', () => {
  it('trimaps read as nonzero cover the whole image: a loud warning that names --mask-foreground', async () => {
    const { root, corporaRoot } = await trimapDataset();
    const lines: string[] = [];
    const ds = await ensureSourceManifest(`folder:${root}`, { corporaRoot, log: (l) => lines.push(l) });
    expect(ds.rows!.every((r) => r.mask_format === 'png-nonzero')).toBe(true);
    expect(ds.rows!.map((r) => r.boxes)).toEqual(ds.rows!.map(() => [0, 0, S, S]));
    const warning = lines.find((l) => l.startsWith('warning:'));
    expect(warning).toMatch(/4 of 4 segmentation masks cover 95% or more of their image/);
    expect(warning).toMatch(/--mask-foreground 1,3/);
  });

  it('--mask-foreground 3,1: the pet and its border are the object, recorded in mask_format and the config', async () => {
    const { root, corporaRoot } = await trimapDataset();
    const lines: string[] = [];
    const ds = await ensureSourceManifest(`folder:${root}`, { corporaRoot, maskForeground: '3,1', log: (l) => lines.push(l) });
    expect(lines.some((l) => l.startsWith('warning:'))).toBe(false);
    expect(ds.metadata.config.mask_foreground).toBe('1,3');
    const rows = [...ds.rows!].sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }));
    expect(rows.map((r) => r.mask_format)).toEqual(rows.map(() => 'png-values:1,3'));
    // pet [4 + i, 5, 6, 8] plus its one-pixel ring
    const index = (r: { path: string }) => Number(/(\d+)\.png$/.exec(r.path)![1]);
    expect(rows.map((r) => r.boxes)).toEqual(rows.map((r) => [3 + index(r), 4, 8, 10]));
    const m = (await loadSegMask(root, rows[0]))!;
    const t = trimap(4, 5, 6, 8);
    expect(Array.from(m.data)).toEqual(Array.from(t, (v) => (v === 1 || v === 3 ? 1 : 0)));
    // left out later (a plain generate or train), the declaration stays: the manifest is reused as it is
    const plain = await ensureSourceManifest(`folder:${root}`, { corporaRoot });
    expect(plain.rebuilt).toBe(false);
    expect(plain.metadata.config.mask_foreground).toBe('1,3');
    // a different declaration is a different manifest: rebuilt, not reused
    const again = await ensureSourceManifest(`folder:${root}`, { corporaRoot, maskForeground: '1' });
    expect(again.rebuilt).toBe(true);
    expect(again.rows!.find((r) => r.path === 'train/a/0.png')!.boxes).toEqual([4, 5, 6, 8]);
    // --force without the flag goes back to nonzero
    const reset = await ensureSourceManifest(`folder:${root}`, { corporaRoot, force: true, log: () => {} });
    expect(reset.metadata.config.mask_foreground).toBeUndefined();
    expect(reset.rows!.every((r) => r.mask_format === 'png-nonzero')).toBe(true);
  });

  it('generate: F images are skipped without the declaration and written with it', async () => {
    for (const declared of [false, true]) {
      const { root, corporaRoot } = await trimapDataset();
      const s = await runGenerate({
        ...GENERATE_DEFAULTS, dataset: `folder:${root}`, corporaRoot, methods: ['f-random'], splits: ['train'], size: null, params: {},
        maskForeground: declared ? '1,3' : undefined, progress: createProgress({ quiet: true }), log: () => {},
      });
      expect(s.exitCode).toBe(0);
      const rows = await rowsOf(join(corporaRoot, 'folder-pets', 'f-random'));
      expect(rows.map((r) => r.status)).toEqual(rows.map(() => (declared ? 'ok' : 'skipped')));
    }
  });

  it('a bad declaration names the flag; a colour mask under declared values is an error row naming the file', async () => {
    expect(() => canonicalMaskValues('1,x')).toThrow(/--mask-foreground "1,x": "x" is not a value or a range/);
    expect(() => canonicalMaskValues('5-2')).toThrow(/"5-2" is not within 0-255, low to high/);
    expect(() => canonicalMaskValues('256')).toThrow(/not within 0-255/);
    expect(canonicalMaskValues('7,1-3,4,9-9,255')).toBe('1-4,7,9,255');
    expect(Array.from(maskValueTable('1,3').subarray(0, 5))).toEqual([0, 1, 0, 1, 0]);
    const { root, corporaRoot } = await trimapDataset(2);
    const rgb = Buffer.alloc(S * S * 3, 1);
    await writeFile(join(root, 'masks', 'train', 'b', '1.png'), await sharp(rgb, { raw: { width: S, height: S, channels: 3 } }).png().toBuffer());
    const ds = await ensureSourceManifest(`folder:${root}`, { corporaRoot, maskForeground: '1,3' });
    const bad = ds.rows!.find((r) => r.path === 'train/b/1.png')!;
    expect(bad.status).toBe('error');
    expect(bad.error).toMatch(/masks\/train\/b\/1\.png.*3 channels: declared mask values \(png-values\) need a one-channel \(grey\) PNG/);
    await expect(ensureSourceManifest('synth-cct', { corporaRoot, maskForeground: '1' })).rejects.toThrow(/--mask-foreground applies to the PNG segmentation masks of folder: and waterbirds/);
  });
});
