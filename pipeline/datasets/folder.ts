import fg from 'fast-glob';
import { readFile, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { UserError } from '../../manifests/errors.ts';
import { decodePngMask, resolveInsideRoot } from '../../manifests/masks.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import {
  IMAGE_EXT, MaskCoverage, baseRow, boxesOfMask, errorRow, isFile, listingFingerprint, mapLimit, naturalCompare, pngMaskFormat, probeImage, rowOrError,
  type AdapterOptions, type AdapterResult,
} from './common.ts';
import { streamCsv } from './csv.ts';

/**
 * A plain image-folder dataset:
 *   <root>/<split>/<class>/<image>                 every top-level folder except `masks` is a split
 *   <root>/masks/<split>/<class>/<stem>.png        optional segmentation masks, nonzero = object
 *   <root>/boxes.csv                               optional boxes: path,x,y,w,h (one line per box, path as above)
 *   <root>/classes.txt                             optional class list, one per line, in label order
 * Without classes.txt the classes are the class folders of `train` (or of every split when there is no train),
 * sorted by name.
 */
export const FOLDER_BOX_COLUMNS = ['path', 'x', 'y', 'w', 'h'] as const;

/** The folder dataset's fingerprint: file listing with sizes plus boxes.csv and classes.txt. */
export function folderFingerprint(root: string, opts: { followSymlinks?: boolean } = {}): Promise<string> {
  return listingFingerprint(root, ['**/*'], ['boxes.csv', 'classes.txt'], { followSymlinks: opts.followSymlinks ?? false });
}

/**
 * Where `rel` really lives when that is outside the dataset root (a symbolic link, of the file or of a folder on
 * its way, pointing elsewhere), else null. Such files are error rows unless the user asked to follow links: a link
 * in a downloaded dataset must not make us read (and copy into corpora) arbitrary files of this machine.
 */
async function outsideRoot(realRoot: string, root: string, rel: string): Promise<string | null> {
  let real: string;
  try {
    real = await realpath(join(root, rel));
  } catch {
    return null; // missing or dangling: reported as a missing file where it is read
  }
  return real === realRoot || real.startsWith(realRoot + sep) ? null : real;
}

const outsideMessage = (root: string, rel: string, real: string) =>
  `${join(root, rel)} is a symbolic link (or inside one) to ${real}, outside the dataset root ${root}; move the file into the dataset, or pass --follow-symlinks to read it`;

export async function readFolder(root: string, opts: AdapterOptions = {}): Promise<AdapterResult> {
  // first, while nothing else is held: listing a large dataset is a memory peak of its own; and a file changed
  // during the ingest then makes the next run rebuild
  const fingerprint = await folderFingerprint(root, { followSymlinks: opts.followSymlinks });
  const all = (await fg('*/*/*', { cwd: root, onlyFiles: true }))
    .filter((f) => IMAGE_EXT.test(f) && !f.startsWith('masks/'))
    .sort(naturalCompare);
  if (!all.length) {
    throw new UserError('no images found at <split>/<class>/<image>', { file: root, fix: 'lay the dataset out as <root>/train/<class>/<image>, <root>/test/<class>/<image>, ...' });
  }
  const realRoot = await realpath(root);
  const escapes = new Map<string, string>();
  if (!opts.followSymlinks) {
    for (const f of all) {
      const real = await outsideRoot(realRoot, root, f);
      if (real) escapes.set(f, real);
    }
  }
  // a linked-in folder must not become a class either: classes come from the files that stay inside
  const files = all.filter((f) => !escapes.has(f));

  const classesFile = join(root, 'classes.txt');
  let classNames: string[];
  let classSource: string;
  if (await isFile(classesFile)) {
    classNames = (await readFile(classesFile, 'utf8')).split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    if (!classNames.length) throw new UserError('classes.txt lists no classes', { file: classesFile, fix: 'one class folder name per line' });
    const dup = classNames.find((c, i) => classNames.indexOf(c) !== i);
    if (dup) throw new UserError(`class "${dup}" is listed twice`, { file: classesFile });
    classSource = 'classes.txt';
  } else {
    const hasTrain = files.some((f) => f.startsWith('train/'));
    classNames = [...new Set(files.filter((f) => !hasTrain || f.startsWith('train/')).map((f) => f.split('/')[1]))].sort(naturalCompare);
    classSource = hasTrain ? 'train folders' : 'all folders';
  }
  const labelOf = new Map(classNames.map((c, i) => [c, i]));

  const boxesFile = join(root, 'boxes.csv');
  const boxesByPath = new Map<string, number[]>();
  const hasBoxes = await isFile(boxesFile);
  if (hasBoxes) {
    const known = new Set(all);
    for await (const { line, values: v } of streamCsv(boxesFile, FOLDER_BOX_COLUMNS)) {
      const ctx = { file: boxesFile, row: line };
      resolveInsideRoot(root, v.path, ctx);
      const path = v.path.replace(/^\.\//, '');
      if (!known.has(path)) throw new UserError(`"${v.path}" is not an image of this dataset`, { ...ctx, fix: 'paths must be <split>/<class>/<image> relative to the dataset root' });
      const box = [v.x, v.y, v.w, v.h].map(Number);
      if (!box.every(Number.isFinite)) throw new UserError(`box "${v.x},${v.y},${v.w},${v.h}" is not four numbers`, { ...ctx, fix: 'x,y,w,h in image pixels' });
      if (!boxesByPath.has(path)) boxesByPath.set(path, []);
      boxesByPath.get(path)!.push(...box);
    }
  }

  const maskFormat = pngMaskFormat(opts);
  const coverage = new MaskCoverage();
  const rows = await mapLimit(all, async (path): Promise<SourceRow> => {
    const [split, cls, name] = path.split('/');
    const label = labelOf.get(cls);
    const maskRel = `masks/${split}/${cls}/${name.replace(/\.[^.]*$/, '')}.png`;
    const hasMask = await isFile(join(root, maskRel));
    const row = baseRow({
      id: path, split, label: label ?? -1, class_name: cls, path,
      mask_path: hasMask ? maskRel : null, mask_format: hasMask ? maskFormat : null,
      boxes: boxesByPath.get(path) ?? null,
    });
    const escaped = escapes.get(path);
    if (escaped) return errorRow(row, outsideMessage(root, path, escaped));
    if (label === undefined) {
      return errorRow(row, `${join(root, path)}: class folder "${cls}" is not a known class (${classNames.join(', ')}, from ${classSource}); rename the folder or add the class to classes.txt`);
    }
    const maskEscaped = hasMask && !opts.followSymlinks ? await outsideRoot(realRoot, root, maskRel) : null;
    if (maskEscaped) return errorRow(row, outsideMessage(root, maskRel, maskEscaped));
    return rowOrError(row, async (r) => {
      const { width, height } = await probeImage(join(root, r.path), { maxPixels: opts.maxPixels });
      const sized = { ...r, width, height };
      if (!hasMask) return sized;
      // the mask's header first: a mask of another size (or a huge one) is refused before it is decoded
      const mh = await probeImage(join(root, maskRel), { maxPixels: opts.maxPixels });
      if (mh.width !== width || mh.height !== height) {
        return errorRow(sized, `mask ${join(root, maskRel)} is ${mh.width}x${mh.height} but image ${join(root, path)} is ${width}x${height}; masks must be aligned with their images`);
      }
      const m = await decodePngMask(join(root, maskRel), maskFormat);
      if (m.width !== width || m.height !== height) {
        return errorRow(sized, `mask ${join(root, maskRel)} is ${m.width}x${m.height} but image ${join(root, path)} is ${width}x${height}; masks must be aligned with their images`);
      }
      coverage.add(m);
      return sized.boxes ? sized : { ...sized, boxes: boxesOfMask(m) };
    });
  }, { concurrency: opts.concurrency, progress: opts.progress, stage: 'folder' });

  const warning = coverage.warning(opts);
  return {
    rows,
    classNames,
    warnings: warning ? [warning] : [],
    config: { class_source: classSource, fingerprint },
  };
}
