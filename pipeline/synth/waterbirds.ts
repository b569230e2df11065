import { rngFor } from '../../manifests/rng.ts';
import { landBackground, waterBackground } from './backgrounds.ts';
import { composite, drawPlacement, encodeJpeg, encodeMaskPng, type Placement } from './compose.ts';
import type { SynthOptions } from './options.ts';
import { renderSprite } from './sprites.ts';
import type { StagedDir } from './staging.ts';
import { forEachLimit, type SynthProgress } from './util.ts';

/**
 * synth-waterbirds, in the real Waterbirds layout (metadata.csv, CUB-style image paths, segmentations/*.png).
 * Birds are small emoji whose classes differ only in shape and colour (and those are jittered); the place
 * (land / water) is a large, easy texture that agrees with the class in `correlation` of the train images.
 */
export const SYNTH_LANDBIRDS: Record<string, string> = {
  eagle: '022.Bald_Eagle', owl: '031.Great_Horned_Owl', parrot: '044.Scarlet_Macaw', rooster: '057.Red_Junglefowl',
  dove: '063.Mourning_Dove', bird: '073.Blue_Jay', peacock: '081.Indian_Peafowl', turkey: '092.Wild_Turkey', 'black-bird': '010.Brewer_Blackbird',
};
export const SYNTH_WATERBIRDS: Record<string, string> = {
  duck: '101.Red_breasted_Merganser', swan: '108.Mute_Swan', flamingo: '113.American_Flamingo', penguin: '120.Rockhopper_Penguin', goose: '125.Canada_Goose',
};
const EMOJI_BY_CLASS = [Object.keys(SYNTH_LANDBIRDS), Object.keys(SYNTH_WATERBIRDS)];
const PLACES = [
  ['/b/bamboo_forest', '/f/forest/broadleaf'],
  ['/o/ocean', '/l/lake/natural'],
];

export interface WaterbirdsSample {
  imgId: number;
  split: 0 | 1 | 2;
  y: 0 | 1;
  place: 0 | 1;
}

/** Group counts: train keeps P(place == y) = correlation per class; val and test are balanced over the 4 groups. */
export function waterbirdsSamples(o: SynthOptions): WaterbirdsSample[] {
  const out: Omit<WaterbirdsSample, 'imgId'>[] = [];
  const add = (split: 0 | 1 | 2, y: 0 | 1, place: 0 | 1, n: number) => { for (let i = 0; i < n; i++) out.push({ split, y, place }); };
  const perSplit: [0 | 1 | 2, number][] = [[0, o.train], [1, o.val], [2, o.test]];
  for (const [split, n] of perSplit) {
    const start = out.length;
    if (split === 0) {
      for (const y of [0, 1] as const) {
        const ny = y === 0 ? Math.floor(n / 2) : n - Math.floor(n / 2);
        const agree = Math.round(ny * o.correlation);
        add(0, y, y, agree);
        add(0, y, (1 - y) as 0 | 1, ny - agree);
      }
    } else {
      const groups: [0 | 1, 0 | 1][] = [[0, 0], [0, 1], [1, 0], [1, 1]];
      groups.forEach(([y, place], g) => add(split, y, place, Math.floor(n / 4) + (g < n % 4 ? 1 : 0)));
    }
    // Interleave the groups so img_id order carries no label information.
    const slice = out.slice(start);
    rngFor(o.seed, 'synth-waterbirds', 'order', split).shuffle(slice);
    out.splice(start, slice.length, ...slice);
  }
  return out.map((s, i) => ({ ...s, imgId: i + 1 }));
}

/** Everything random about one image, from its own stream: reproducible per image, independent of build order. */
export function waterbirdsPlacement(o: SynthOptions, s: WaterbirdsSample): Placement {
  return drawPlacement(rngFor(o.seed, 'synth-waterbirds', 'fg', s.imgId), EMOJI_BY_CLASS[s.y], o.size, o.fgScale);
}

export function waterbirdsFilename(o: SynthOptions, s: WaterbirdsSample, p: Placement): string {
  const species = (s.y === 1 ? SYNTH_WATERBIRDS : SYNTH_LANDBIRDS)[p.emoji];
  const tag = 100000 + rngFor(o.seed, 'synth-waterbirds', 'name', s.imgId).int(900000);
  const speciesName = species.slice(4);
  return `${species}/${speciesName}_${String(s.imgId).padStart(4, '0')}_${tag}.jpg`;
}

export async function buildSynthWaterbirds(out: StagedDir, o: SynthOptions, progress?: SynthProgress): Promise<void> {
  const samples = waterbirdsSamples(o);
  const lines: string[] = ['img_id,img_filename,y,split,place,place_filename'];
  const names: string[] = new Array(samples.length);
  await forEachLimit(samples, async (s, i) => {
    const p = waterbirdsPlacement(o, s);
    const bgRng = rngFor(o.seed, 'synth-waterbirds', 'bg', s.imgId);
    const bg = s.place === 1 ? waterBackground(bgRng, o.size, o.size, o.difficulty) : landBackground(bgRng, o.size, o.size, o.difficulty);
    const { image, mask } = composite(bg, await renderSprite(p.emoji, p.side), p);
    const file = waterbirdsFilename(o, s, p);
    names[i] = file;
    await out.write(file, await encodeJpeg(image));
    await out.write(`segmentations/${file.replace(/\.jpg$/, '.png')}`, await encodeMaskPng(mask));
  }, { progress, stage: 'synth-waterbirds' });
  samples.forEach((s, i) => {
    const places = PLACES[s.place];
    const placeFile = `${places[s.imgId % places.length]}/${String(rngFor(o.seed, 'synth-waterbirds', 'place', s.imgId).int(1e8)).padStart(8, '0')}.jpg`;
    lines.push([s.imgId, names[i], s.y, s.split, s.place, placeFile].join(','));
  });
  await out.write('metadata.csv', lines.join('\n') + '\n');
}
