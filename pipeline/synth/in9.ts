import { rngFor } from '../../manifests/rng.ts';
import type { RGBImage } from '../../manifests/pixels.ts';
import { in9Background, IN9_BACKGROUND_FAMILIES } from './backgrounds.ts';
import { blackOut, composite, drawPlacement, encodeJpeg, encodeNpyBool, onlyForeground, type Placement } from './compose.ts';
import type { SynthOptions } from './options.ts';
import { renderSprite } from './sprites.ts';
import type { StagedDir } from './staging.ts';
import { forEachLimit, type SynthProgress } from './util.ts';

/**
 * synth-in9, in the IN-9 release layout (see pipeline/datasets/in9.ts): 9 classes, each with its own background
 * family (class c's images sit on family c with P = correlation), and the full test family built from the same
 * foregrounds: original, mixed_same, mixed_rand, mixed_next, only_fg, no_fg, fg_mask (.npy).
 */
export const SYNTH_IN9_CLASSES: { folder: string; wnid: string; emojis: string[] }[] = [
  { folder: '00_dog', wnid: 'n02085620', emojis: ['dog', 'poodle', 'guide-dog', 'service-dog'] },
  { folder: '01_bird', wnid: 'n01530575', emojis: ['bird', 'eagle', 'owl', 'parrot', 'dove', 'rooster'] },
  { folder: '02_wheeled vehicle', wnid: 'n02814533', emojis: ['automobile', 'bicycle', 'racing-car', 'pickup-truck', 'delivery-truck'] },
  { folder: '03_reptile', wnid: 'n01664065', emojis: ['lizard', 'snake', 'turtle', 'crocodile'] },
  { folder: '04_carnivore', wnid: 'n02120079', emojis: ['fox', 'tiger', 'leopard', 'badger', 'raccoon'] },
  { folder: '05_insect', wnid: 'n02165456', emojis: ['ant', 'beetle', 'butterfly', 'lady-beetle', 'honeybee', 'cricket'] },
  { folder: '06_musical instrument', wnid: 'n02672831', emojis: ['guitar', 'violin', 'trumpet', 'saxophone', 'drum', 'banjo'] },
  { folder: '07_primate', wnid: 'n02480855', emojis: ['monkey', 'gorilla', 'orangutan'] },
  { folder: '08_fish', wnid: 'n01440764', emojis: ['fish', 'tropical-fish', 'blowfish', 'shark'] },
];
const K = SYNTH_IN9_CLASSES.length;

export interface In9Item {
  split: 'train' | 'val' | 'test';
  cls: number;
  /** index within (split, class) */
  index: number;
  /** background family of its own background */
  family: number;
}

function perClass(n: number, c: number): number {
  return Math.floor(n / K) + (c < n % K ? 1 : 0);
}

/** Background family: the class's own with P = correlation (exact count per class), another family otherwise. */
export function in9Items(o: SynthOptions, split: In9Item['split'], n: number): In9Item[] {
  const items: In9Item[] = [];
  for (let c = 0; c < K; c++) {
    const nc = perClass(n, c);
    const agree = Math.round(nc * o.correlation);
    const rng = rngFor(o.seed, 'synth-in9', 'family', split, c);
    const order = Array.from({ length: nc }, (_, i) => i);
    rng.shuffle(order);
    for (let i = 0; i < nc; i++) {
      const off = order[i] < agree ? 0 : 1 + rng.int(K - 1);
      items.push({ split, cls: c, index: i, family: (c + off) % K });
    }
  }
  return items;
}

export function in9FileName(item: Pick<In9Item, 'cls' | 'index' | 'split'>): string {
  const base = item.split === 'train' ? 10000 : item.split === 'val' ? 50000 : 80000;
  return `${SYNTH_IN9_CLASSES[item.cls].wnid}_${base + item.index}.JPEG`;
}

export function in9Placement(o: SynthOptions, item: Pick<In9Item, 'cls' | 'index' | 'split'>): Placement {
  return drawPlacement(rngFor(o.seed, 'synth-in9', 'fg', item.split, item.cls, item.index), SYNTH_IN9_CLASSES[item.cls].emojis, o.size, o.fgScale);
}

function background(o: SynthOptions, item: In9Item): RGBImage {
  return in9Background(item.family, rngFor(o.seed, 'synth-in9', 'bg', item.split, item.cls, item.index), o.size, o.size, o.difficulty);
}

/** For each test item, whose background each mixed variant borrows (deterministic, from the seed). */
export function in9MixPartners(o: SynthOptions, test: In9Item[]): { same: In9Item; rand: In9Item; next: In9Item }[] {
  const byClass = Array.from({ length: K }, (_, c) => test.filter((t) => t.cls === c));
  return test.map((t) => {
    const rng = rngFor(o.seed, 'synth-in9', 'mix', t.cls, t.index);
    const same = byClass[t.cls].length > 1 ? byClass[t.cls].filter((u) => u !== t)[rng.int(byClass[t.cls].length - 1)] : t;
    const pick = (c: number) => (byClass[c].length ? byClass[c][rng.int(byClass[c].length)] : t);
    const randCls = (t.cls + 1 + rng.int(K - 1)) % K;
    return { same, rand: pick(randCls), next: pick((t.cls + 1) % K) };
  });
}

export async function buildSynthIn9(out: StagedDir, o: SynthOptions, progress?: SynthProgress): Promise<void> {
  const train = in9Items(o, 'train', o.train);
  const val = in9Items(o, 'val', o.val);
  const test = in9Items(o, 'test', o.test);
  const folder = (i: In9Item) => SYNTH_IN9_CLASSES[i.cls].folder;
  const render = async (item: In9Item, bg: RGBImage) => {
    const p = in9Placement(o, item);
    return composite(bg, await renderSprite(p.emoji, p.side), p);
  };

  await forEachLimit([...train, ...val], async (item) => {
    const { image, mask } = await render(item, background(o, item));
    const name = `${folder(item)}/${in9FileName(item)}`;
    await out.write(`train/original/${item.split}/${name}`, await encodeJpeg(image));
    if (item.split === 'train') await out.write(`train/no_fg/train/${name}`, await encodeJpeg(blackOut(image, mask)));
  }, { progress, stage: 'synth-in9 train/val' });

  const partners = in9MixPartners(o, test);
  await forEachLimit(test, async (item, i) => {
    const name = `${folder(item)}/${in9FileName(item)}`;
    const { image, mask } = await render(item, background(o, item));
    const write = async (variant: string, img: RGBImage) => out.write(`test/${variant}/val/${name}`, await encodeJpeg(img));
    await write('original', image);
    await write('mixed_same', (await render(item, background(o, partners[i].same))).image);
    await write('mixed_rand', (await render(item, background(o, partners[i].rand))).image);
    await write('mixed_next', (await render(item, background(o, partners[i].next))).image);
    await write('only_fg', onlyForeground(image, mask));
    await write('no_fg', blackOut(image, mask));
    await out.write(`test/fg_mask/val/${name.replace(/\.JPEG$/, '.npy')}`, encodeNpyBool(mask));
  }, { progress, stage: 'synth-in9 test' });
}

export { IN9_BACKGROUND_FAMILIES };
