import { describe, it, expect } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureSourceManifest } from '../pipeline/datasets/index.ts';
import { resolveSynthOptions } from '../pipeline/synth/options.ts';
import { cctHomeLocations, cctItems, SYNTH_CCT_CIS_LOCATIONS, SYNTH_CCT_TRANS_LOCATIONS } from '../pipeline/synth/cct.ts';
import { manifestDigest, readSourceManifest } from '../manifests/index.ts';
import { hashTree, tempDir } from './fixtures/datasets.ts';

const tiny = { size: 32, train: 90, val: 30, test: 30 };

describe('synth-cct', () => {
  it('writes the ECCV layout (bare NaN boxes, empty class, original-resolution boxes) deterministically', async () => {
    const dataRoot = await tempDir(), corporaRoot = await tempDir();
    const build = async () => {
      const r = await ensureSourceManifest('synth-cct', { dataRoot, corporaRoot, seed: 9, synth: tiny, force: true });
      return { r, files: await hashTree(join(dataRoot, 'synth-cct')), digest: await manifestDigest(r.dir) };
    };
    const a = await build();
    const b = await build();
    expect(b.files).toEqual(a.files);
    expect(b.digest).toBe(a.digest);

    const root = join(dataRoot, 'synth-cct');
    const text = await readFile(join(root, 'eccv_18_annotation_files/train_annotations.json'), 'utf8');
    expect(text).toMatch(/"bbox": \[\s*NaN,/); // as Python's json.dump writes it
    const json = JSON.parse(text.replace(/NaN/g, 'null')) as {
      images: { id: string; width: number; height: number; location: number }[];
      annotations: { image_id: string; category_id: number; bbox?: (number | null)[] }[];
      categories: { id: number; name: string }[];
    };
    expect(json.categories).toHaveLength(16);
    expect(json.annotations.some((x) => x.category_id === 30)).toBe(true);
    expect(json.annotations.some((x) => x.category_id !== 30 && !('bbox' in x))).toBe(true);

    const { rows, metadata } = await readSourceManifest(a.r.dir);
    expect(metadata.class_names).toHaveLength(15);
    expect(metadata.class_names).not.toContain('empty');
    expect(rows.every((x) => x.status === 'ok')).toBe(true);
    expect(rows.filter((x) => x.split === 'train')).toHaveLength(90); // empties dropped
    expect((metadata.config.dropped as { empty: number }).empty).toBeGreaterThan(0);
    // boxes rescaled from 2048×1536 to the stored 32×32
    for (const ann of json.annotations.filter((x) => x.bbox && x.bbox[0] !== null).slice(0, 20)) {
      const row = rows.find((x) => x.id === ann.image_id)!;
      const [x, y, w, h] = ann.bbox as number[];
      const want = [x * 32 / 2048, y * 32 / 1536, w * 32 / 2048, h * 32 / 1536];
      row.boxes!.forEach((v, i) => expect(v).toBeCloseTo(want[i], 3));
      // the box sits on whole stored pixels (it came from a stored-pixel mask)
      row.boxes!.forEach((v) => expect(Math.abs(v - Math.round(v))).toBeLessThan(0.01));
    }
    const nanIds = json.annotations.filter((x) => x.bbox && x.bbox[0] === null).map((x) => x.image_id);
    expect(nanIds.length).toBeGreaterThan(0);
    for (const id of nanIds) expect(rows.find((x) => x.id === id)!.boxes).toBeNull();
  });

  it('cis splits share train locations and the class→location shortcut; trans_test uses unseen locations', () => {
    const o = resolveSynthOptions('synth-cct', { seed: 1, correlation: 0.8 });
    const train = cctItems(o, 'train', 3000).filter((i) => i.animal >= 0);
    const home = train.filter((i) => cctHomeLocations(i.animal).includes(i.location)).length / train.length;
    // P(home) = corr + (1 - corr) * 2/10 = 0.84
    expect(Math.abs(home - 0.84)).toBeLessThan(0.03);
    expect(train.every((i) => SYNTH_CCT_CIS_LOCATIONS.includes(i.location))).toBe(true);
    const trans = cctItems(o, 'trans_test', 300);
    expect(trans.every((i) => SYNTH_CCT_TRANS_LOCATIONS.includes(i.location))).toBe(true);
  });
});
