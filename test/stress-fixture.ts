import sharp from 'sharp';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ManifestWriter, TOOL_VERSION, rngFor, type ManifestMetadata, type SourceRow } from '../manifests/index.ts';

/**
 * A tiny masked dataset for the stress-test and report tests: non-square W×H PNGs with a per-image noise
 * background (so every donor's background is recognisable), an object of a class colour (an ellipse drawn in a
 * segmentation mask, or, for box-only rows, a rectangle given as a box), 3 classes and a Waterbirds-like `place`.
 */
export const SW = 24;
export const SH = 16;
export const CLASSES = ['c0', 'c1', 'c2'];

/** Where the object of image i sits: an ellipse (or, boxOnly, its bounding rectangle) that moves with i. */
export function objectOf(i: number, boxOnly: boolean): (x: number, y: number) => boolean {
  const cx = [5, 12, 18, 9][i % 4], cy = [5, 8, 10, 4][i % 4];
  if (boxOnly) return (x, y) => x >= cx - 3 && x <= cx + 3 && y >= cy - 2 && y <= cy + 2;
  return (x, y) => (x - cx) ** 2 / 12 + (y - cy) ** 2 / 6 <= 1;
}

/** The raw RGB pixels of image i of class `label`. */
export function imagePixels(i: number, label: number, boxOnly: boolean): Buffer {
  const r = rngFor('stress-fixture', i);
  const obj = objectOf(i, boxOnly);
  const colour = [[230, 40, 40], [40, 230, 40], [40, 40, 230]][label];
  const buf = Buffer.alloc(SW * SH * 3);
  for (let y = 0; y < SH; y++) for (let x = 0; x < SW; x++) {
    const p = (y * SW + x) * 3;
    if (obj(x, y)) buf.set(colour.map((c) => c + r.int(10)), p);
    else buf.set([r.int(256), r.int(256), r.int(256)], p);
  }
  return buf;
}

/** The fixture on disk. */
export interface StressFixture {
  root: string;
  corporaRoot: string;
  dataset: string;
  sourceDir: string;
  rows: SourceRow[];
}

/**
 * Write `<tmp>/data` and `<tmp>/corpora/<dataset>/source`. Test rows: `perClass` per class; row i is box-only when
 * i % 5 === 4; place = i % 2. A few train and val rows are there too, so the default splits leave them out.
 */
export async function makeStressFixture(tmp: string, opts: { perClass?: number; dataset?: string } = {}): Promise<StressFixture> {
  const perClass = opts.perClass ?? 3;
  const dataset = opts.dataset ?? 'toy-stress';
  const root = join(tmp, 'data');
  const corporaRoot = join(tmp, 'corpora');
  await mkdir(join(root, 'images'), { recursive: true });
  await mkdir(join(root, 'masks'), { recursive: true });
  const rows: SourceRow[] = [];
  const plan: { split: string; label: number }[] = [];
  for (const split of ['train', 'val']) for (let l = 0; l < CLASSES.length; l++) plan.push({ split, label: l });
  for (let k = 0; k < perClass; k++) for (let l = 0; l < CLASSES.length; l++) plan.push({ split: 'test', label: l });
  for (let i = 0; i < plan.length; i++) {
    const { split, label } = plan[i];
    const boxOnly = i % 5 === 4;
    const obj = objectOf(i, boxOnly);
    await writeFile(join(root, 'images', `${i}.png`), await sharp(imagePixels(i, label, boxOnly), { raw: { width: SW, height: SH, channels: 3 } }).png().toBuffer());
    let boxes: number[] | null = null;
    if (boxOnly) {
      const cx = [5, 12, 18, 9][i % 4], cy = [5, 8, 10, 4][i % 4];
      boxes = [cx - 3, cy - 2, 7, 5];
    } else {
      const m = Buffer.alloc(SW * SH);
      for (let y = 0; y < SH; y++) for (let x = 0; x < SW; x++) m[y * SW + x] = obj(x, y) ? 255 : 0;
      await writeFile(join(root, 'masks', `${i}.png`), await sharp(m, { raw: { width: SW, height: SH, channels: 1 } }).png().toBuffer());
    }
    rows.push({
      id: `${split}/${CLASSES[label]}/${i}`, split, label, class_name: CLASSES[label], path: `images/${i}.png`,
      mask_path: boxOnly ? null : `masks/${i}.png`, mask_format: boxOnly ? null : 'png-nonzero', boxes,
      group: `y=${label},place=${i % 2}`, place: i % 2, location: null, variant: null, width: SW, height: SH, status: 'ok', error: null,
    });
  }
  const meta: ManifestMetadata = {
    format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset, class_names: CLASSES, tool_version: TOOL_VERSION,
    seed: 0, config: { root, adapter: 'waterbirds' },
  };
  const sourceDir = join(corporaRoot, dataset, 'source');
  const w = new ManifestWriter<SourceRow>(sourceDir, 'source', meta, { prefix: 'source' });
  for (const r of rows) await w.write(r);
  await w.close();
  return { root, corporaRoot, dataset, sourceDir, rows };
}

/** Decode a PNG to raw RGB. */
export async function rawOf(file: string): Promise<Buffer> {
  return sharp(file).removeAlpha().raw().toBuffer();
}
