import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { ensureSourceManifest } from '../pipeline/datasets/index.ts';
import { resolveSynthOptions } from '../pipeline/synth/options.ts';
import { in9Items, in9MixPartners, in9Placement, SYNTH_IN9_CLASSES } from '../pipeline/synth/in9.ts';
import { renderSprite } from '../pipeline/synth/sprites.ts';
import { placementMask } from '../pipeline/synth/compose.ts';
import { loadSegMask } from '../manifests/masks.ts';
import { manifestDigest, readSourceManifest } from '../manifests/index.ts';
import { hashTree, tempDir } from './fixtures/datasets.ts';

const tiny = { size: 32, train: 27, val: 9, test: 18 };

describe('synth-in9', () => {
  it('builds the IN-9 layout byte-identically from a seed, with every test variant and fg_mask', async () => {
    const dataRoot = await tempDir(), corporaRoot = await tempDir();
    const build = async () => {
      const r = await ensureSourceManifest('synth-in9', { dataRoot, corporaRoot, seed: 4, synth: tiny, force: true });
      return { r, files: await hashTree(join(dataRoot, 'synth-in9')), digest: await manifestDigest(r.dir) };
    };
    const a = await build();
    const b = await build();
    expect(b.files).toEqual(a.files);
    expect(b.digest).toBe(a.digest);
    const paths = Object.keys(a.files);
    // train: original + no_fg; val: original; test: 6 variants + fg_mask; + synth.json
    expect(paths.length).toBe(27 * 2 + 9 + 18 * 7 + 1);
    expect(paths).toContain('test/fg_mask/val/02_wheeled vehicle/n02814533_80000.npy');

    const { rows, metadata } = await readSourceManifest(a.r.dir);
    expect(metadata.class_names).toEqual(['dog', 'bird', 'wheeled vehicle', 'reptile', 'carnivore', 'insect', 'musical instrument', 'primate', 'fish']);
    expect(rows.every((x) => x.status === 'ok')).toBe(true);
    expect(rows.filter((x) => x.split === 'train')).toHaveLength(27);
    expect(rows.filter((x) => x.split === 'val')).toHaveLength(9);
    for (const v of ['original', 'mixed_same', 'mixed_rand', 'mixed_next', 'only_fg', 'no_fg']) {
      expect(rows.filter((x) => x.variant === v)).toHaveLength(18);
    }
  });

  it('test masks are the placed sprite; train nofg-diff masks recover it through JPEG', async () => {
    const dataRoot = await tempDir(), corporaRoot = await tempDir();
    const r = await ensureSourceManifest('synth-in9', { dataRoot, corporaRoot, seed: 5, synth: tiny });
    const root = join(dataRoot, 'synth-in9');
    const { rows } = await readSourceManifest(r.dir);
    const o = resolveSynthOptions('synth-in9', { seed: 5, ...tiny });
    const item = (row: (typeof rows)[number]) => {
      const index = Number(/_(\d+)\.JPEG$/.exec(row.path)![1]) % 10000;
      return { split: row.split as 'train' | 'test', cls: row.label, index };
    };
    for (const row of rows.filter((x) => x.variant === 'mixed_next').slice(0, 6)) {
      const p = in9Placement(o, item(row));
      const want = placementMask(await renderSprite(p.emoji, p.side), p, o.size, o.size);
      expect(Buffer.from((await loadSegMask(root, row))!.data).equals(Buffer.from(want.data))).toBe(true);
    }
    for (const row of rows.filter((x) => x.split === 'train').slice(0, 9)) {
      expect(row.mask_format).toBe('nofg-diff');
      const p = in9Placement(o, item(row));
      const want = placementMask(await renderSprite(p.emoji, p.side), p, o.size, o.size);
      const got = (await loadSegMask(root, row))!;
      let inter = 0, union = 0;
      for (let i = 0; i < want.data.length; i++) { inter += want.data[i] & got.data[i]; union += want.data[i] | got.data[i]; }
      expect(inter / union).toBeGreaterThan(0.9);
    }
  });

  it('background families follow the correlation; mixed partners follow their definitions', () => {
    const o = resolveSynthOptions('synth-in9', { seed: 3, train: 900, correlation: 0.7 });
    const items = in9Items(o, 'train', 900);
    expect(items.filter((i) => i.family === i.cls).length / 900).toBeCloseTo(0.7, 2);
    for (let c = 0; c < 9; c++) expect(items.filter((i) => i.cls === c)).toHaveLength(100);
    const test = in9Items(o, 'test', 90);
    const partners = in9MixPartners(o, test);
    test.forEach((t, i) => {
      expect(partners[i].same.cls).toBe(t.cls);
      expect(partners[i].same).not.toBe(t);
      expect(partners[i].rand.cls).not.toBe(t.cls);
      expect(partners[i].next.cls).toBe((t.cls + 1) % 9);
    });
    expect(SYNTH_IN9_CLASSES.map((c) => c.folder)).toEqual(['00_dog', '01_bird', '02_wheeled vehicle', '03_reptile', '04_carnivore', '05_insect', '06_musical instrument', '07_primate', '08_fish']);
  });
});
