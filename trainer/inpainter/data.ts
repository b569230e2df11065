import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { UserError } from '../../manifests/errors.ts';
import { boxMaskOf, resolveInsideRoot } from '../../manifests/masks.ts';
import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import { readSourceManifest } from '../../manifests/reader.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import { rngFor } from '../../manifests/rng.ts';
import { decodeResized, resizeMask } from '../augment.ts';
import { objectMaskOf } from '../data.ts';
import { growMask, MaskIntegral } from './holes.ts';
import { datasetRootOf } from '../../common/paths.ts';

/**
 * Background images for the inpainter: every usable source image, resized to S×S, with the region a training hole
 * must avoid (the object's box, grown by a pixel). Images without any object annotation are left out: we could not
 * tell background from object, so a hole there might teach the model to paint objects.
 */
export interface BackgroundImage {
  id: string;
  image: RGBImage;
  /** the object's box (grown by 1 px): holes never touch it */
  avoid: MaskIntegral;
}

export interface BackgroundSet {
  dataset: string;
  sourceDir: string;
  root: string;
  train: BackgroundImage[];
  /** images of a held-out split (val, else test), for the final score and the bench */
  heldOut: BackgroundImage[];
  heldOutSplit: string;
  skipped: number;
}

const HELD_OUT_SPLITS = ['val', 'cis_val', 'test', 'cis_test'];

export interface LoadOptions {
  /** folder of the source manifest (corpora/<dataset>/source) */
  sourceDir: string;
  /** dataset root; default: the manifest's metadata.config.root */
  root?: string;
  size: number;
  /** at most this many train images (seeded choice) */
  maxTrain: number;
  maxHeldOut: number;
  seed: number;
  concurrency?: number;
}

/** `corpora/<dataset>/source`, with a UserError that says how to build it when it is not there. */
export async function sourceDirFor(dataset: string, corporaRoot = 'corpora'): Promise<string> {
  const dir = join(corporaRoot, dataset, 'source');
  try {
    if ((await stat(dir)).isDirectory()) return dir;
  } catch { /* reported below */ }
  throw new UserError(`no source manifest for dataset "${dataset}" at ${dir}`, {
    file: dir, fix: `build it first: \`make dataset DATASET=${dataset}\` (or pass --source <folder with source-*.arrow>)`,
  });
}

/** Seeded subset of at most n rows, in a stable order. */
function pick(rows: SourceRow[], n: number, seed: number, what: string): SourceRow[] {
  if (rows.length <= n) return rows;
  const rng = rngFor('inpainter-pick', seed, what);
  const idx = Array.from(rows.keys());
  rng.shuffle(idx);
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => rows[i]);
}

async function loadOne(root: string, row: SourceRow, size: number, file: string): Promise<BackgroundImage | null> {
  const obj = await objectMaskOf(root, row);
  if (!obj) return null;
  const box: Mask = boxMaskOf(obj.mask);
  if (!box.data.some((v) => v)) return null;
  const image = await decodeResized(resolveInsideRoot(root, row.path, { file, row: row.id }), size, size, { file, row: row.id });
  return { id: row.id, image, avoid: new MaskIntegral(growMask(resizeMask(box, size, size), 1)) };
}

export async function loadBackgrounds(o: LoadOptions): Promise<BackgroundSet> {
  const { metadata, rows } = await readSourceManifest(o.sourceDir);
  const root = o.root ?? (typeof metadata.config.root === 'string' ? datasetRootOf(metadata.config.root) : undefined);
  if (!root) throw new UserError('the source manifest does not say where its dataset lives (metadata.config.root)', { file: o.sourceDir, fix: 'pass --root <dataset folder>' });
  const ok = rows.filter((r) => r.status === 'ok');
  const train = pick(ok.filter((r) => r.split === 'train'), o.maxTrain, o.seed, 'train');
  if (!train.length) throw new UserError('the source manifest has no usable train rows', { file: o.sourceDir, fix: 'rebuild it with `make dataset`' });
  const heldOutSplit = HELD_OUT_SPLITS.find((s) => ok.some((r) => r.split === s)) ?? '';
  const held = heldOutSplit ? pick(ok.filter((r) => r.split === heldOutSplit), o.maxHeldOut, o.seed, 'held-out') : [];
  const limit = pLimit(o.concurrency ?? 4);
  const load = (list: SourceRow[]) => Promise.all(list.map((r) => limit(() => loadOne(root, r, o.size, o.sourceDir))));
  const [t, h] = await Promise.all([load(train), load(held)]);
  const keep = (l: (BackgroundImage | null)[]) => l.filter((x): x is BackgroundImage => x !== null);
  const trainSet = keep(t);
  if (!trainSet.length) {
    throw new UserError('no train image has an object mask or box, so no background can be told apart', {
      file: o.sourceDir, fix: 'the inpainter needs masks or boxes (mask_path / boxes columns) to place holes on background',
    });
  }
  return {
    dataset: metadata.dataset, sourceDir: o.sourceDir, root, train: trainSet, heldOut: keep(h), heldOutSplit,
    skipped: t.length + h.length - trainSet.length - keep(h).length,
  };
}
