import { describe, it, expect } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCct, rescaleBox } from '../pipeline/datasets/cct.ts';
import { replaceBareNonFinite } from '../pipeline/datasets/json.ts';
import { UserError } from '../manifests/errors.ts';
import { tempDir, writeCctFixture } from './fixtures/datasets.ts';

describe('cct adapter', () => {
  it('reads the four ECCV annotation files: 15-class style labels, locations, rescaled boxes, NaN/missing boxes', async () => {
    const root = await tempDir();
    const expected = await writeCctFixture(root);
    const { rows, classNames, config } = await readCct(root);
    expect(classNames).toEqual(['opossum', 'bobcat', 'car']); // category 30 "empty" dropped, order by category id
    expect(config.category_ids).toEqual([1, 6, 33]);
    expect(config.dropped).toEqual({ empty: 1, unannotated: 1 });
    for (const [split, exp] of Object.entries(expected)) {
      const got = rows.filter((r) => r.split === split);
      expect(got.map((r) => r.id).sort()).toEqual(exp.map((e) => e.id).sort());
      for (const e of exp) {
        const r = got.find((x) => x.id === e.id)!;
        expect(r).toMatchObject({
          label: e.label, class_name: classNames[e.label], location: e.location, group: e.location,
          path: `eccv_18_all_images_sm/${e.id}.jpg`, width: 64, height: 48, status: 'ok', mask_path: null,
        });
        if (e.boxes === null) expect(r.boxes).toBeNull();
        else expect(r.boxes).toEqual(e.boxes.map((v) => Math.fround(v)));
      }
    }
    expect(rows.some((r) => r.id === 'tr-empty' || r.id === 'tr-unannotated')).toBe(false);
  });

  it('rescales boxes from the annotation resolution to the stored image', () => {
    expect(rescaleBox([100, 50, 200, 100], { width: 1000, height: 500 }, { width: 100, height: 100 })).toEqual([10, 10, 20, 20]);
    expect(rescaleBox([null, 1, 2, 3], { width: 1, height: 1 }, { width: 1, height: 1 })).toBeNull();
    expect(rescaleBox(undefined, { width: 1, height: 1 }, { width: 1, height: 1 })).toBeNull();
    expect(rescaleBox([1, 1, 0, 3], { width: 1, height: 1 }, { width: 1, height: 1 })).toBeNull();
  });

  it('turns bare NaN / Infinity into null outside strings only', () => {
    expect(replaceBareNonFinite('{"a": [NaN, -Infinity, 1], "b": "NaN inside"}')).toBe('{"a": [null, null, 1], "b": "NaN inside"}');
    expect(replaceBareNonFinite('{"s": "q\\"NaN", "n": NaN}')).toBe('{"s": "q\\"NaN", "n": null}');
  });

  it('a missing JSON field is a UserError naming the file, the JSON path and the fix', async () => {
    const root = await tempDir();
    await writeCctFixture(root);
    const file = join(root, 'eccv_18_annotation_files/train_annotations.json');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('"file_name":"tr-nan.jpg",', ''));
    const err = await readCct(root).catch((e) => e);
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/images\[1\]\.file_name: missing field[\s\S]*fix: .*images\[id,file_name,width,height,location\]/);
  });

  it('an unknown category is an error row; a missing image file is an error row', async () => {
    const root = await tempDir();
    await writeCctFixture(root);
    const file = join(root, 'eccv_18_annotation_files/cis_val_annotations.json');
    await writeFile(file, (await readFile(file, 'utf8')).replace('"category_id": 6', '"category_id": 77'));
    const { rm } = await import('node:fs/promises');
    await rm(join(root, 'eccv_18_all_images_sm/cv-a.jpg'));
    await rm(join(root, 'eccv_18_all_images_sm/tr-a.jpg'));
    const { rows } = await readCct(root);
    expect(rows.find((r) => r.id === 'cv-a')).toMatchObject({ status: 'error', error: expect.stringMatching(/cis_val_annotations\.json: image cv-a has category_id 77, which is not in categories/) });
    expect(rows.find((r) => r.id === 'tr-a')).toMatchObject({ status: 'error', error: expect.stringMatching(/eccv_18_all_images_sm\/tr-a\.jpg: image file not found/) });
  });

  it('a file_name escaping the image folder and a missing annotation file are UserErrors', async () => {
    const root = await tempDir();
    await writeCctFixture(root);
    const file = join(root, 'eccv_18_annotation_files/trans_test_annotations.json');
    await writeFile(file, (await readFile(file, 'utf8')).replace('"file_name":"tt-a.jpg"', '"file_name":"../../x.jpg"'));
    await expect(readCct(root)).rejects.toThrow(/trans_test_annotations\.json \(row images\[0\]\.file_name\): path "\.\.\/\.\.\/x\.jpg" escapes the dataset root/);
    const { rm } = await import('node:fs/promises');
    await rm(file);
    await expect(readCct(root)).rejects.toThrow(/trans_test_annotations\.json: file not found[\s\S]*ECCV'18 trans_test_annotations\.json/);
  });
});
