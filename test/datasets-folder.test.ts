import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { readFolder } from '../pipeline/datasets/folder.ts';
import { ensureSourceManifest, datasetSlug } from '../pipeline/datasets/index.ts';
import { loadSegMask, boxesToMask } from '../manifests/masks.ts';
import { readSourceManifest } from '../manifests/index.ts';
import { tempDir, writeFolderFixture } from './fixtures/datasets.ts';

describe('folder adapter', () => {
  it('reads <split>/<class>/<image>, masks/ and boxes.csv; classes from train; unknown class is an error row', async () => {
    const root = await tempDir();
    await writeFolderFixture(root);
    const { rows, classNames } = await readFolder(root);
    expect(classNames).toEqual(['cat', 'dog']);
    const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
    expect(Object.keys(byId).sort()).toEqual(['test/bird/d.png', 'test/cat/c.png', 'train/cat/a.png', 'train/dog/b.jpg']);
    expect(byId['train/cat/a.png']).toMatchObject({
      split: 'train', label: 0, class_name: 'cat', mask_path: 'masks/train/cat/a.png', mask_format: 'png-nonzero', boxes: [2, 3, 4, 5], width: 16, height: 16, status: 'ok',
    });
    expect(Buffer.from((await loadSegMask(root, byId['train/cat/a.png']))!.data).equals(Buffer.from(boxesToMask([2, 3, 4, 5], 16, 16).data))).toBe(true);
    expect(byId['train/dog/b.jpg']).toMatchObject({ label: 1, mask_path: null, boxes: [1.5, 2, 3, 4, 10, 10, 2, 2], status: 'ok' });
    expect(byId['test/cat/c.png']).toMatchObject({ split: 'test', label: 0, boxes: null, status: 'ok' });
    expect(byId['test/bird/d.png'].status).toBe('error');
    expect(byId['test/bird/d.png'].error).toMatch(/test\/bird\/d\.png: class folder "bird" is not a known class \(cat, dog, from train folders\); rename the folder or add the class to classes\.txt/);
  });

  it('classes.txt sets the classes and their order', async () => {
    const root = await tempDir();
    await writeFolderFixture(root, { classesTxt: ['dog', 'bird', 'cat'] });
    const { rows, classNames } = await readFolder(root);
    expect(classNames).toEqual(['dog', 'bird', 'cat']);
    expect(rows.every((r) => r.status === 'ok')).toBe(true);
    expect(rows.find((r) => r.id === 'test/bird/d.png')!.label).toBe(1);
  });

  it('boxes.csv: missing column, unknown path and escaping path are UserErrors naming the line', async () => {
    const a = await tempDir();
    await writeFolderFixture(a, { boxesCsv: 'path,x,y,w\ntrain/dog/b.jpg,1,2,3\n' });
    await expect(readFolder(a)).rejects.toThrow(/boxes\.csv: missing column "h"[\s\S]*path,x,y,w,h/);
    const b = await tempDir();
    await writeFolderFixture(b, { boxesCsv: 'path,x,y,w,h\ntrain/dog/zzz.jpg,1,2,3,4\n' });
    await expect(readFolder(b)).rejects.toThrow(/boxes\.csv \(row 2\): "train\/dog\/zzz\.jpg" is not an image of this dataset/);
    const c = await tempDir();
    await writeFolderFixture(c, { boxesCsv: 'path,x,y,w,h\n../train/dog/b.jpg,1,2,3,4\n' });
    await expect(readFolder(c)).rejects.toThrow(/boxes\.csv \(row 2\): path "\.\.\/train\/dog\/b\.jpg" escapes the dataset root/);
  });

  it('folder:<path> through ensureSourceManifest', async () => {
    const root = await tempDir();
    const corporaRoot = await tempDir();
    await writeFolderFixture(root);
    const r = await ensureSourceManifest(`folder:${root}`, { corporaRoot });
    expect(r.dir).toBe(join(corporaRoot, datasetSlug(`folder:${root}`), 'source'));
    expect(datasetSlug('folder:/x/my pets/')).toBe('folder-my_pets');
    const { metadata, rows } = await readSourceManifest(r.dir);
    expect(metadata.config).toMatchObject({ adapter: 'folder', root });
    expect(rows.map((x) => x.id)).toEqual(['train/cat/a.png', 'train/dog/b.jpg', 'test/bird/d.png', 'test/cat/c.png']);
  });
});
