import { join } from 'node:path';
import { decodePngMask, resolveInsideRoot } from '../../manifests/masks.ts';
import { UserError } from '../../manifests/errors.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import { MaskCoverage, assertUniqueIds, listingFingerprint, baseRow, boxesOfMask, errorRow, mapLimit, pngMaskFormat, probeImage, rowOrError, type AdapterOptions, type AdapterResult } from './common.ts';
import { intCell, readCsv } from './csv.ts';

/** Waterbirds (Sagawa et al.): `metadata.csv` + images + CUB segmentations. DESIGN §6. */
export const WATERBIRDS_COLUMNS = ['img_id', 'img_filename', 'y', 'split', 'place', 'place_filename'] as const;
export const WATERBIRDS_CLASSES = ['landbird', 'waterbird'];
const SPLITS = ['train', 'val', 'test'];

/** `001.Black_footed_Albatross/x.jpg` → `segmentations/001.Black_footed_Albatross/x.png` */
export function waterbirdsMaskPath(imgFilename: string): string {
  return `segmentations/${imgFilename.replace(/\.[^./]*$/, '')}.png`;
}

export function waterbirdsFingerprint(root: string): Promise<string> {
  return listingFingerprint(root, ['**/*'], ['metadata.csv']);
}

export async function readWaterbirds(root: string, opts: AdapterOptions = {}): Promise<AdapterResult> {
  // first, while nothing else is held: listing a large dataset is a memory peak of its own; and a file changed
  // during the ingest then makes the next run rebuild
  const fingerprint = await waterbirdsFingerprint(root);
  const csvFile = join(root, 'metadata.csv');
  const maskFormat = pngMaskFormat(opts);
  const coverage = new MaskCoverage();
  const { records } = await readCsv(csvFile, WATERBIRDS_COLUMNS);
  const drafts = records.map(({ line, values: v }) => {
    const ctx = { file: csvFile, row: line };
    if (!v.img_filename) throw new UserError('empty img_filename', { ...ctx, fix: 'every row needs the image path relative to the dataset root' });
    resolveInsideRoot(root, v.img_filename, ctx);
    const y = intCell(v.y), split = intCell(v.split), place = intCell(v.place);
    const base = baseRow({
      id: v.img_id || v.img_filename,
      split: split !== null && SPLITS[split] ? SPLITS[split] : String(v.split),
      label: y ?? -1,
      class_name: y !== null && WATERBIRDS_CLASSES[y] ? WATERBIRDS_CLASSES[y] : '(unknown)',
      path: v.img_filename,
      mask_path: waterbirdsMaskPath(v.img_filename),
      mask_format: maskFormat,
      place,
      group: `y=${v.y},place=${v.place}`,
    });
    const problems: string[] = [];
    if (y === null || !WATERBIRDS_CLASSES[y]) problems.push(`y="${v.y}" is not 0 (landbird) or 1 (waterbird)`);
    if (split === null || !SPLITS[split]) problems.push(`split="${v.split}" is not 0 (train), 1 (val) or 2 (test)`);
    if (place === null || (place !== 0 && place !== 1)) problems.push(`place="${v.place}" is not 0 (land) or 1 (water)`);
    return { base, line, problems };
  });
  assertUniqueIds(drafts.map((d) => d.base), csvFile);

  const rows = await mapLimit(drafts, async ({ base, line, problems }): Promise<SourceRow> => {
    if (problems.length) return errorRow(base, `${csvFile} (row ${line}): ${problems.join('; ')}; fix the value in metadata.csv`);
    return rowOrError(base, async (row) => {
      const { width, height } = await probeImage(join(root, row.path), { maxPixels: opts.maxPixels });
      const sized = { ...row, width, height };
      const maskFile = join(root, row.mask_path!);
      let mask;
      try {
        mask = await decodePngMask(maskFile, maskFormat);
      } catch (e) {
        if (e instanceof UserError && /file not found/.test(e.message)) {
          return errorRow(sized, `segmentation mask ${maskFile} not found (row ${line} of ${csvFile}); put the CUB segmentation PNG there (same path as the image, .png)`);
        }
        throw e;
      }
      if (mask.width !== width || mask.height !== height) {
        return errorRow(sized, `mask ${maskFile} is ${mask.width}x${mask.height} but image ${join(root, row.path)} is ${width}x${height}; masks must be aligned with their images`);
      }
      coverage.add(mask);
      return { ...sized, boxes: boxesOfMask(mask) };
    });
  }, { concurrency: opts.concurrency, progress: opts.progress, stage: 'waterbirds' });

  const warning = coverage.warning(opts);
  return {
    rows,
    warnings: warning ? [warning] : [],
    classNames: WATERBIRDS_CLASSES,
    config: { fingerprint },
  };
}
