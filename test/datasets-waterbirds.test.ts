import { describe, it, expect } from 'vitest';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readWaterbirds } from '../pipeline/datasets/waterbirds.ts';
import { ensureSourceManifest } from '../pipeline/datasets/index.ts';
import { loadSegMask, boxesToMask } from '../manifests/masks.ts';
import { readSourceManifest, manifestDigest } from '../manifests/index.ts';
import { UserError } from '../manifests/errors.ts';
import { WATERBIRDS_FIXTURE, tempDir, writeWaterbirdsFixture, type WaterbirdsFixtureRow } from './fixtures/datasets.ts';

describe('waterbirds adapter', () => {
  it('reads metadata.csv, images and segmentations: labels, splits, groups, places, boxes, masks', async () => {
    const root = await tempDir();
    await writeWaterbirdsFixture(root);
    const { rows, classNames } = await readWaterbirds(root);
    expect(classNames).toEqual(['landbird', 'waterbird']);
    expect(rows).toHaveLength(WATERBIRDS_FIXTURE.length);
    for (const f of WATERBIRDS_FIXTURE) {
      const r = rows.find((x) => x.id === f.img_id)!;
      expect(r.status).toBe('ok');
      expect(r.label).toBe(Number(f.y));
      expect(r.class_name).toBe(['landbird', 'waterbird'][Number(f.y)]);
      expect(r.split).toBe(['train', 'val', 'test'][Number(f.split)]);
      expect(r.place).toBe(Number(f.place));
      expect(r.group).toBe(`y=${f.y},place=${f.place}`);
      expect(r.path).toBe(f.img_filename);
      expect(r.mask_path).toBe(`segmentations/${f.img_filename.replace('.jpg', '.png')}`);
      expect(r.mask_format).toBe('png-nonzero');
      expect([r.width, r.height]).toEqual([f.width, f.height]);
      expect(r.boxes).toEqual(f.rect);
      const m = await loadSegMask(root, r);
      const want = boxesToMask(f.rect ?? [], f.width, f.height);
      expect(Buffer.from(m!.data).equals(Buffer.from(want.data))).toBe(true);
    }
  });

  it('writes a source manifest with the documented metadata, skips an up-to-date one, rebuilds on change', async () => {
    const dataRoot = await tempDir();
    const corporaRoot = await tempDir();
    await writeWaterbirdsFixture(join(dataRoot, 'waterbirds', 'waterbird_complete95_forest2water2'));
    const first = await ensureSourceManifest('waterbirds', { dataRoot, corporaRoot, seed: 3 });
    expect(first.rebuilt).toBe(true);
    expect(first.dir).toBe(join(corporaRoot, 'waterbirds', 'source'));
    expect(first.root).toBe(join(dataRoot, 'waterbirds', 'waterbird_complete95_forest2water2'));
    const { metadata, rows } = await readSourceManifest(first.dir);
    expect(metadata).toMatchObject({ format: 'cfgen-manifest', kind: 'source', dataset: 'waterbirds', seed: 3, class_names: ['landbird', 'waterbird'] });
    expect(metadata.config).toMatchObject({ adapter: 'waterbirds', root: first.root });
    expect(typeof metadata.config.fingerprint).toBe('string');
    expect(rows.map((r) => r.id)).toEqual(['1', '2', '3', '4', '5']); // train, train, val, test, test
    const digest = await manifestDigest(first.dir);

    const again = await ensureSourceManifest('waterbirds', { dataRoot, corporaRoot, seed: 3 });
    expect(again.rebuilt).toBe(false);
    expect(await manifestDigest(first.dir)).toBe(digest);

    const forced = await ensureSourceManifest('waterbirds', { dataRoot, corporaRoot, seed: 3, force: true });
    expect(forced.rebuilt).toBe(true);
    expect(await manifestDigest(first.dir)).toBe(digest); // byte-identical rerun

    const csv = join(first.root, 'metadata.csv');
    await writeFile(csv, (await readFile(csv, 'utf8')).replace('\n5,029.American_Crow/American_Crow_0002_25054.jpg,0,2,0,', '\n5,029.American_Crow/American_Crow_0002_25054.jpg,0,2,1,'));
    const changed = await ensureSourceManifest('waterbirds', { dataRoot, corporaRoot, seed: 3 });
    expect(changed.rebuilt).toBe(true);
    expect((await readSourceManifest(first.dir)).rows.find((r) => r.id === '5')!.place).toBe(1);
  });

  it('says where to put the real dataset when it is missing', async () => {
    const dataRoot = await tempDir();
    await expect(ensureSourceManifest('waterbirds', { dataRoot, corporaRoot: dataRoot })).rejects.toThrow(
      /waterbirds dataset is not at .*waterbirds\/[\s\S]*metadata\.csv[\s\S]*group_DRO[\s\S]*waterbird_complete95_forest2water2/,
    );
  });

  it('a missing column is a UserError naming the file, the column and the expected header', async () => {
    const root = await tempDir();
    await writeWaterbirdsFixture(root, WATERBIRDS_FIXTURE, { columns: ['img_id', 'img_filename', 'y', 'split', 'place_filename'] });
    const err = await readWaterbirds(root).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toContain(join(root, 'metadata.csv'));
    expect(err.message).toMatch(/missing column "place"/);
    expect(err.message).toMatch(/img_id,img_filename,y,split,place,place_filename/);
  });

  it('a path escaping the root is a UserError naming the CSV row', async () => {
    const root = await tempDir();
    const bad: WaterbirdsFixtureRow = { ...WATERBIRDS_FIXTURE[0], img_id: '9', img_filename: '../../etc/passwd.jpg' };
    await writeWaterbirdsFixture(root, [WATERBIRDS_FIXTURE[0], bad]);
    await expect(readWaterbirds(root)).rejects.toThrow(/metadata\.csv \(row 3\): path "\.\.\/\.\.\/etc\/passwd\.jpg" escapes the dataset root[\s\S]*relative to the dataset root/);
  });

  it('per-image problems become error rows that name the file and the fix', async () => {
    const root = await tempDir();
    const base = WATERBIRDS_FIXTURE[0];
    const rows: WaterbirdsFixtureRow[] = [
      { ...base, img_id: '10', img_filename: '001.A/A_1.jpg', noImage: true },
      { ...base, img_id: '11', img_filename: '001.A/A_2.jpg', noMask: true },
      { ...base, img_id: '12', img_filename: '001.A/A_3.jpg', maskSize: [16, 16] },
      { ...base, img_id: '13', img_filename: '001.A/A_4.jpg', y: '2' },
      { ...base, img_id: '14', img_filename: '001.A/A_5.jpg' },
    ];
    await writeWaterbirdsFixture(root, rows);
    await writeFile(join(root, '001.A/A_5.jpg'), 'not a jpeg');
    const out = await readWaterbirds(root);
    const byId = Object.fromEntries(out.rows.map((r) => [r.id, r]));
    expect(out.rows.every((r) => r.status === 'error')).toBe(true);
    expect(byId['10'].error).toMatch(/001\.A\/A_1\.jpg: image file not found.*fix:/);
    expect(byId['11'].error).toMatch(/segmentation mask .*segmentations\/001\.A\/A_2\.png not found.*put the CUB segmentation/);
    expect(byId['12'].error).toMatch(/mask .*A_3\.png is 16x16 but image .*A_3\.jpg is 32x16/);
    expect(byId['13'].error).toMatch(/row 5.*y="2" is not 0 \(landbird\) or 1 \(waterbird\)/);
    expect(byId['14'].error).toMatch(/A_5\.jpg: cannot decode image/);
    expect(byId['12'].width).toBe(32); // size is still recorded when the image itself is fine
  });

  it('a malformed CSV is a UserError', async () => {
    const root = await tempDir();
    await writeFile(join(root, 'metadata.csv'), 'img_id,img_filename,y,split,place,place_filename\n1,"a.jpg,1,0,1,x\n');
    await expect(readWaterbirds(root)).rejects.toThrow(/metadata\.csv.*malformed CSV/);
    await rm(join(root, 'metadata.csv'));
    await expect(readWaterbirds(root)).rejects.toThrow(/metadata\.csv: file not found/);
  });
});
