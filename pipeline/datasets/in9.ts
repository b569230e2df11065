import { join } from 'node:path';
import { rngFor } from '../../manifests/rng.ts';
import { UserError } from '../../manifests/errors.ts';
import { decodeNofgDiff, decodeNpyMask } from '../../manifests/masks.ts';
import type { Mask } from '../../manifests/pixels.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import {
  baseRow, boxesOfMask, errorRow, isDir, isFile, listClassFolders, listingFingerprint, mapLimit, naturalCompare, probeImage, rowOrError,
  type AdapterOptions, type AdapterResult,
} from './common.ts';

/**
 * ImageNet-9 / backgrounds challenge (Xiao et al.), in the layout of the paper's release (DESIGN §6):
 *   train/original/train/<class>/<img>   train/no_fg/train/<class>/<img>   (train foreground = nofg-diff)
 *   train/original/val/<class>/<img>     (optional; carved from train when absent)
 *   test/<variant>/val/<class>/<img>     test/fg_mask/val/<class>/<stem>.npy
 * (the variants may also sit directly at the root, as backgrounds_challenge_data.tar.gz unpacks them)
 */
export const IN9_TEST_VARIANTS = ['original', 'mixed_same', 'mixed_rand', 'mixed_next', 'only_fg', 'no_fg', 'only_bg_b', 'only_bg_t'] as const;
export const IN9_CLASS_FOLDERS = ['00_dog', '01_bird', '02_wheeled vehicle', '03_reptile', '04_carnivore', '05_insect', '06_musical instrument', '07_primate', '08_fish'];
/** fraction of each train class moved to val when the release has no `train/original/val` */
export const IN9_CARVED_VAL_FRACTION = 0.1;

export function in9ClassName(folder: string): string {
  return folder.replace(/^\d+_/, '');
}

export function in9CarvedValNames(names: readonly string[], seed: number, classFolder: string, fraction = IN9_CARVED_VAL_FRACTION): Set<string> {
  const sorted = [...names].sort(naturalCompare);
  rngFor(seed, 'in9-val-carve', classFolder).shuffle(sorted);
  return new Set(sorted.slice(0, Math.floor(sorted.length * fraction)));
}

interface Draft {
  row: SourceRow;
  /** how to get the mask for the boxes column */
  mask?: { kind: 'nofg'; file: string } | { kind: 'npy'; file: string };
}

export function in9Fingerprint(root: string): Promise<string> {
  return listingFingerprint(root, ['train/**/*', 'test/**/*', `{${IN9_TEST_VARIANTS.join(',')},fg_mask}/val/**/*`]);
}

export async function readIn9(root: string, opts: AdapterOptions = {}): Promise<AdapterResult> {
  // first, while nothing else is held: listing a large dataset is a memory peak of its own; and a file changed
  // during the ingest then makes the next run rebuild
  const fingerprint = await in9Fingerprint(root);
  const seed = opts.seed ?? 0;
  const trainDir = 'train/original/train';
  const train = await listClassFolders(root, trainDir);
  if (!train.size) {
    throw new UserError(`no class folders with images in ${trainDir}/`, { file: join(root, trainDir), fix: 'expected train/original/train/00_dog/*.JPEG ... 08_fish/ (see docs/datasets.md)' });
  }
  const classFolders = [...train.keys()].sort(naturalCompare);
  const classNames = classFolders.map(in9ClassName);
  const labelOf = new Map(classFolders.map((c, i) => [c, i]));

  const drafts: Draft[] = [];
  const classRow = (cls: string, id: string, split: string, path: string): SourceRow => {
    const label = labelOf.get(cls);
    return baseRow({ id, split, label: label ?? -1, class_name: label === undefined ? in9ClassName(cls) : classNames[label], path });
  };
  const unknownClass = (row: SourceRow, cls: string, where: string): SourceRow =>
    errorRow(row, `class folder "${cls}" in ${join(root, where)} is not one of the train classes (${classFolders.join(', ')}); rename or remove it`);

  const addTrainLike = async (split: 'train' | 'val', listDir: string, nofgDir: string, files: Map<string, string[]>, keep?: (cls: string, name: string) => boolean) => {
    for (const [cls, names] of files) {
      for (const name of names) {
        if (keep && !keep(cls, name)) continue;
        const row = classRow(cls, `${split}/${cls}/${name}`, split, `${listDir}/${cls}/${name}`);
        if (!labelOf.has(cls)) { drafts.push({ row: unknownClass(row, cls, listDir) }); continue; }
        const nofg = `${nofgDir}/${cls}/${name}`;
        // The release has no_fg only for images with an ImageNet box; the others train as originals (no mask).
        if (await isFile(join(root, nofg))) {
          drafts.push({ row: { ...row, mask_path: nofg, mask_format: 'nofg-diff' }, mask: { kind: 'nofg', file: join(root, nofg) } });
        } else drafts.push({ row });
      }
    }
  };

  const valDir = 'train/original/val';
  const hasVal = await isDir(join(root, valDir));
  let carved: Map<string, Set<string>> | null = null;
  if (hasVal) {
    await addTrainLike('train', trainDir, 'train/no_fg/train', train);
    await addTrainLike('val', valDir, 'train/no_fg/val', await listClassFolders(root, valDir));
  } else {
    carved = new Map(classFolders.map((c) => [c, in9CarvedValNames(train.get(c)!, seed, c)]));
    await addTrainLike('train', trainDir, 'train/no_fg/train', train, (c, n) => !carved!.get(c)!.has(n));
    const valFiles = new Map([...train].map(([c, names]) => [c, names.filter((n) => carved!.get(c)!.has(n))]));
    // carved val rows keep their train paths; their id says val
    for (const [cls, names] of valFiles) {
      for (const name of names) {
        const row = classRow(cls, `val/${cls}/${name}`, 'val', `${trainDir}/${cls}/${name}`);
        const nofg = `train/no_fg/train/${cls}/${name}`;
        if (await isFile(join(root, nofg))) drafts.push({ row: { ...row, mask_path: nofg, mask_format: 'nofg-diff' }, mask: { kind: 'nofg', file: join(root, nofg) } });
        else drafts.push({ row });
      }
    }
  }

  // The MadryLab tarball unpacks the variants at the top level; the paper's layout moves them under test/.
  const testBase = (await isDir(join(root, 'test'))) ? 'test/' : '';
  const variants: string[] = [];
  for (const variant of IN9_TEST_VARIANTS) {
    const dir = `${testBase}${variant}/val`;
    if (!(await isDir(join(root, dir)))) continue;
    variants.push(variant);
    for (const [cls, names] of await listClassFolders(root, dir)) {
      for (const name of names) {
        const row = { ...classRow(cls, `test/${variant}/${cls}/${name}`, 'test', `${dir}/${cls}/${name}`), variant, group: variant };
        if (!labelOf.has(cls)) { drafts.push({ row: unknownClass(row, cls, dir) }); continue; }
        // fg_mask is per original test image (by stem); every variant of the same file shares the foreground
        const npy = `${testBase}fg_mask/val/${cls}/${name.replace(/\.[^.]*$/, '')}.npy`;
        if (await isFile(join(root, npy))) drafts.push({ row: { ...row, mask_path: npy, mask_format: 'npy' }, mask: { kind: 'npy', file: join(root, npy) } });
        else drafts.push({ row });
      }
    }
  }

  // One decode per .npy, shared by the variant rows that point at it.
  const npyCache = new Map<string, Promise<Mask>>();
  const rows = await mapLimit(drafts, async ({ row, mask }) => {
    if (row.status === 'error') return row;
    return rowOrError(row, async (r) => {
      const { width, height } = await probeImage(join(root, r.path), { maxPixels: opts.maxPixels });
      const sized = { ...r, width, height };
      if (!mask) return sized;
      let m: Mask;
      if (mask.kind === 'nofg') m = await decodeNofgDiff(mask.file, join(root, r.path));
      else {
        if (!npyCache.has(mask.file)) npyCache.set(mask.file, decodeNpyMask(mask.file));
        m = await npyCache.get(mask.file)!;
      }
      if (m.width !== width || m.height !== height) {
        return errorRow(sized, `mask ${mask.file} is ${m.width}x${m.height} but image ${join(root, r.path)} is ${width}x${height}; masks must be aligned with their images`);
      }
      return { ...sized, boxes: boxesOfMask(m) };
    });
  }, { concurrency: opts.concurrency, progress: opts.progress, stage: 'in9' });

  return {
    rows,
    classNames,
    config: {
      class_folders: classFolders,
      test_variants: variants,
      val: carved ? { source: 'carved-from-train', fraction: IN9_CARVED_VAL_FRACTION, seed } : { source: valDir },
      fingerprint,
    },
  };
}
