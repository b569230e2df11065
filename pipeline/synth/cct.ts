import { rngFor } from '../../manifests/rng.ts';
import type { RGBImage } from '../../manifests/pixels.ts';
import { boundingBoxOfMask } from '../../manifests/masks.ts';
import { cctCapture, cctLocationScene, infrared } from './backgrounds.ts';
import { composite, drawPlacement, encodeJpeg } from './compose.ts';
import type { SynthOptions } from './options.ts';
import { renderSprite } from './sprites.ts';
import type { StagedDir } from './staging.ts';
import { forEachLimit, type SynthProgress } from './util.ts';

/**
 * synth-cct, in the Caltech Camera Traps ECCV'18 layout (see pipeline/datasets/cct.ts). The shortcut is the camera
 * location: each class lives mostly at two "home" locations (P = correlation) of the cis locations; cis_val and
 * cis_test share train's locations and correlation, trans_test uses unseen locations. Like the real release, boxes
 * are in the original camera resolution (2048×1536) while stored images are small, some annotations have no or a
 * NaN bbox, and there are "empty" (category 30) images with no animal.
 */
export const SYNTH_CCT_CATEGORIES: { id: number; name: string; emojis: string[] }[] = [
  { id: 1, name: 'opossum', emojis: ['hedgehog'] },
  { id: 3, name: 'raccoon', emojis: ['raccoon'] },
  { id: 5, name: 'squirrel', emojis: ['chipmunk'] },
  { id: 6, name: 'bobcat', emojis: ['leopard'] },
  { id: 7, name: 'skunk', emojis: ['skunk'] },
  { id: 8, name: 'dog', emojis: ['dog', 'poodle'] },
  { id: 9, name: 'coyote', emojis: ['wolf'] },
  { id: 10, name: 'rabbit', emojis: ['rabbit'] },
  { id: 11, name: 'bird', emojis: ['bird', 'black-bird'] },
  { id: 16, name: 'cat', emojis: ['cat', 'black-cat'] },
  { id: 21, name: 'badger', emojis: ['badger'] },
  { id: 30, name: 'empty', emojis: [] },
  { id: 33, name: 'car', emojis: ['automobile', 'pickup-truck'] },
  { id: 34, name: 'deer', emojis: ['deer'] },
  { id: 51, name: 'fox', emojis: ['fox'] },
  { id: 99, name: 'rodent', emojis: ['mouse', 'rat'] },
];
const ANIMALS = SYNTH_CCT_CATEGORIES.filter((c) => c.id !== 30);
export const SYNTH_CCT_CIS_LOCATIONS = [10, 23, 33, 38, 43, 46, 51, 61, 78, 88];
export const SYNTH_CCT_TRANS_LOCATIONS = [100, 105, 108, 115, 120];
/** the "original" camera resolution the annotations are in */
export const SYNTH_CCT_ORIGINAL = { width: 2048, height: 1536 };
/** share of extra empty images, of animal annotations without bbox, and with a NaN bbox */
export const SYNTH_CCT_RATES = { empty: 0.06, noBox: 0.04, nanBox: 0.03 };

export type CctSplit = 'train' | 'cis_val' | 'cis_test' | 'trans_test';

export interface CctItem {
  split: CctSplit;
  index: number;
  /** index into ANIMALS, or -1 for an empty image */
  animal: number;
  location: number;
  /** annotation bbox kind */
  box: 'ok' | 'missing' | 'nan';
}

export function cctHomeLocations(animal: number): number[] {
  const n = SYNTH_CCT_CIS_LOCATIONS.length;
  return [SYNTH_CCT_CIS_LOCATIONS[animal % n], SYNTH_CCT_CIS_LOCATIONS[(animal * 3 + 1) % n]];
}

export function cctItems(o: SynthOptions, split: CctSplit, n: number): CctItem[] {
  const rng = rngFor(o.seed, 'synth-cct', 'items', split);
  const nEmpty = Math.round(n * SYNTH_CCT_RATES.empty);
  const items: CctItem[] = [];
  for (let i = 0; i < n + nEmpty; i++) {
    const animal = i < n ? i % ANIMALS.length : -1;
    let location: number;
    if (split === 'trans_test') location = SYNTH_CCT_TRANS_LOCATIONS[rng.int(SYNTH_CCT_TRANS_LOCATIONS.length)];
    else if (animal >= 0 && rng.next() < o.correlation) location = cctHomeLocations(animal)[rng.int(2)];
    else location = SYNTH_CCT_CIS_LOCATIONS[rng.int(SYNTH_CCT_CIS_LOCATIONS.length)];
    const u = rng.next();
    const box = animal < 0 ? 'missing' : u < SYNTH_CCT_RATES.noBox ? 'missing' : u < SYNTH_CCT_RATES.noBox + SYNTH_CCT_RATES.nanBox ? 'nan' : 'ok';
    items.push({ split, index: i, animal, location, box });
  }
  rng.shuffle(items);
  return items.map((it, i) => ({ ...it, index: i }));
}

/** A UUID-looking image id, as in the real release. */
export function cctImageId(o: SynthOptions, item: Pick<CctItem, 'split' | 'index'>): string {
  const rng = rngFor(o.seed, 'synth-cct', 'id', item.split, item.index);
  const hex = (n: number) => Array.from({ length: n }, () => rng.int(16).toString(16)).join('');
  return `${hex(8)}-${hex(4)}-11e8-${hex(4)}-${hex(12)}`;
}

/** JSON with NaN written bare, exactly as Python's json.dump does in the real annotation files. */
function pythonJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' && Number.isNaN(v) ? '__NaN__' : v), 1).replace(/"__NaN__"/g, 'NaN');
}

export async function buildSynthCct(out: StagedDir, o: SynthOptions, progress?: SynthProgress): Promise<void> {
  const splits: [CctSplit, number][] = [['train', o.train], ['cis_val', o.val], ['cis_test', o.test], ['trans_test', o.test]];
  const scenes = new Map<number, RGBImage>();
  for (const loc of [...SYNTH_CCT_CIS_LOCATIONS, ...SYNTH_CCT_TRANS_LOCATIONS]) {
    scenes.set(loc, cctLocationScene(rngFor(o.seed, 'synth-cct', 'location', loc), o.size, o.size));
  }
  const sx = SYNTH_CCT_ORIGINAL.width / o.size, sy = SYNTH_CCT_ORIGINAL.height / o.size;
  const categories = SYNTH_CCT_CATEGORIES.map(({ id, name }) => ({ id, name }));

  for (const [split, n] of splits) {
    const items = cctItems(o, split, n);
    const images: Record<string, unknown>[] = new Array(items.length);
    const annotations: Record<string, unknown>[] = new Array(items.length);
    await forEachLimit(items, async (item, i) => {
      const id = cctImageId(o, item);
      const rng = rngFor(o.seed, 'synth-cct', 'capture', split, item.index);
      const night = rng.next() < 0.3;
      const bg = cctCapture(scenes.get(item.location)!, rng, o.difficulty);
      let image = bg;
      const ann: Record<string, unknown> = { id: `ann-${id}`, image_id: id, category_id: item.animal < 0 ? 30 : ANIMALS[item.animal].id };
      if (item.animal >= 0) {
        const p = drawPlacement(rngFor(o.seed, 'synth-cct', 'fg', split, item.index), ANIMALS[item.animal].emojis, o.size, o.fgScale);
        const c = composite(bg, await renderSprite(p.emoji, p.side), p);
        image = c.image;
        const b = boundingBoxOfMask(c.mask);
        if (item.box === 'nan') ann.bbox = [NaN, NaN, NaN, NaN];
        else if (item.box === 'ok' && b) ann.bbox = [b.x * sx, b.y * sy, b.w * sx, b.h * sy].map((v) => Math.round(v * 100) / 100);
      }
      images[i] = {
        id, file_name: `${id}.jpg`, width: SYNTH_CCT_ORIGINAL.width, height: SYNTH_CCT_ORIGINAL.height, location: item.location,
        seq_id: `seq-${id.slice(0, 8)}`, seq_num_frames: 1, frame_num: 0,
      };
      annotations[i] = ann;
      await out.write(`eccv_18_all_images_sm/${id}.jpg`, await encodeJpeg(night ? infrared(image) : image));
    }, { progress, stage: `synth-cct ${split}` });
    const doc = { info: { description: `synthetic Caltech Camera Traps (${split}), cfgen`, version: '1' }, images, annotations, categories };
    await out.write(`eccv_18_annotation_files/${split}_annotations.json`, pythonJson(doc) + '\n');
  }
}
