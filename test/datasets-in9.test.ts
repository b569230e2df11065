import { describe, it, expect } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { readIn9, in9CarvedValNames } from '../pipeline/datasets/in9.ts';
import { loadSegMask, boxesToMask } from '../manifests/masks.ts';
import { IN9_FIXTURE_CLASSES, IN9_RECTS, npyBool, tempDir, writeIn9Fixture } from './fixtures/datasets.ts';

const eqMask = (a: { data: Uint8Array }, b: { data: Uint8Array }) => Buffer.from(a.data).equals(Buffer.from(b.data));

describe('in9 adapter', () => {
  it('reads train (nofg-diff masks), val and the test variants with fg_mask .npy', async () => {
    const root = await tempDir();
    await writeIn9Fixture(root, { withVal: true });
    const { rows, classNames, config } = await readIn9(root);
    expect(classNames).toEqual(['dog', 'bird', 'wheeled vehicle']);
    expect(config.val).toEqual({ source: 'train/original/val' });
    expect(config.test_variants).toEqual(['original', 'mixed_same', 'mixed_rand', 'mixed_next', 'only_fg', 'no_fg']);
    expect(rows.every((r) => r.status === 'ok')).toBe(true);
    const count = (f: (r: (typeof rows)[number]) => boolean) => rows.filter(f).length;
    expect(count((r) => r.split === 'train')).toBe(12);
    expect(count((r) => r.split === 'val')).toBe(3);
    expect(count((r) => r.split === 'test')).toBe(36);
    for (const v of ['original', 'mixed_same', 'mixed_rand', 'mixed_next', 'only_fg', 'no_fg']) {
      expect(count((r) => r.variant === v && r.group === v)).toBe(6);
    }

    const dogTrain = rows.find((r) => r.id === 'train/00_dog/n01000000_100.JPEG')!;
    expect(dogTrain).toMatchObject({
      label: 0, class_name: 'dog', path: 'train/original/train/00_dog/n01000000_100.JPEG',
      mask_path: 'train/no_fg/train/00_dog/n01000000_100.JPEG', mask_format: 'nofg-diff', width: 32, height: 32, boxes: [16, 0, 16, 16],
    });
    // the no_fg-derived mask is exactly the blacked-out block
    expect(eqMask((await loadSegMask(root, dogTrain))!, boxesToMask(IN9_RECTS['00_dog'], 32, 32))).toBe(true);
    // no no_fg file: no mask, trains as an original
    expect(rows.find((r) => r.id === 'train/00_dog/n01000000_103.JPEG')).toMatchObject({ mask_path: null, boxes: null, status: 'ok' });

    // every variant of a test file shares its fg_mask
    const variants = rows.filter((r) => r.split === 'test' && r.path.endsWith('02_wheeled vehicle/n03000000_501.JPEG'));
    expect(variants).toHaveLength(6);
    for (const r of variants) {
      expect(r).toMatchObject({ label: 2, mask_path: 'test/fg_mask/val/02_wheeled vehicle/n03000000_501.npy', mask_format: 'npy', boxes: [16, 16, 16, 16] });
      expect(eqMask((await loadSegMask(root, r))!, boxesToMask(IN9_RECTS['02_wheeled vehicle'], 32, 32))).toBe(true);
    }
  });

  it('carves a deterministic seeded val split from train when the release has none', async () => {
    const root = await tempDir();
    await writeIn9Fixture(root);
    const a = await readIn9(root, { seed: 5 });
    const b = await readIn9(root, { seed: 5 });
    expect(a.config.val).toEqual({ source: 'carved-from-train', fraction: 0.1, seed: 5 });
    // 4 images per class, floor(0.4) = 0 carved: with tiny classes nothing is moved
    expect(a.rows.filter((r) => r.split === 'val')).toHaveLength(0);
    expect(a.rows.map((r) => r.id)).toEqual(b.rows.map((r) => r.id));
    const names = Array.from({ length: 40 }, (_, i) => `x_${i}.JPEG`);
    const v1 = in9CarvedValNames(names, 5, '00_dog');
    expect(v1.size).toBe(4);
    expect([...in9CarvedValNames(names, 5, '00_dog')]).toEqual([...v1]);
    expect([...in9CarvedValNames(names, 6, '00_dog')]).not.toEqual([...v1]);
  });

  it('error rows: unknown class folder, fg_mask of another size', async () => {
    const root = await tempDir();
    await writeIn9Fixture(root, { withVal: true, unknownTestClass: true });
    await writeFile(join(root, 'test/fg_mask/val/00_dog/n01000000_500.npy'), npyBool(16, 32, [[0, 0, 4, 4]]));
    const { rows } = await readIn9(root);
    const alien = rows.find((r) => r.id === 'test/original/09_alien/x_1.JPEG')!;
    expect(alien.status).toBe('error');
    expect(alien.error).toMatch(/class folder "09_alien" in .*test\/original\/val is not one of the train classes \(00_dog, 01_bird, 02_wheeled vehicle\)/);
    const bad = rows.filter((r) => r.mask_path === 'test/fg_mask/val/00_dog/n01000000_500.npy');
    expect(bad).toHaveLength(6);
    for (const r of bad) {
      expect(r.status).toBe('error');
      expect(r.error).toMatch(/mask .*n01000000_500\.npy is 16x32 but image .*n01000000_500\.JPEG is 32x32/);
    }
  });

  it('a no_fg image of another size is an error row', async () => {
    const root = await tempDir();
    await writeIn9Fixture(root, { withVal: true });
    await sharp(new Uint8Array(8 * 8 * 3), { raw: { width: 8, height: 8, channels: 3 } }).jpeg().toFile(join(root, 'train/no_fg/train/01_bird/n02000000_101.JPEG'));
    const { rows } = await readIn9(root);
    const r = rows.find((x) => x.id === 'train/01_bird/n02000000_101.JPEG')!;
    expect(r.status).toBe('error');
    expect(r.error).toMatch(/no_fg image is 8x8 but the original .* is 32x32/);
    expect(IN9_FIXTURE_CLASSES).toContain('01_bird');
  });

  it('also reads the test variants where the MadryLab tarball unpacks them (no test/ folder)', async () => {
    const root = await tempDir();
    await writeIn9Fixture(root, { withVal: true, testPrefix: '' });
    const { rows } = await readIn9(root);
    const t = rows.filter((r) => r.split === 'test');
    expect(t).toHaveLength(36);
    expect(t.find((r) => r.id === 'test/mixed_rand/01_bird/n02000000_500.JPEG')).toMatchObject({
      path: 'mixed_rand/val/01_bird/n02000000_500.JPEG', mask_path: 'fg_mask/val/01_bird/n02000000_500.npy', boxes: [0, 16, 16, 16], status: 'ok',
    });
  });

  it('no train folder is a UserError that says what is expected', async () => {
    const root = await tempDir();
    await expect(readIn9(root)).rejects.toThrow(/no class folders with images in train\/original\/train\/[\s\S]*00_dog/);
  });
});
