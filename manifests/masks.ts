import sharp from 'sharp';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { UserError } from './errors.ts';
import { newMask, type Mask } from './pixels.ts';
import type { SourceRow } from './schema.ts';
import { PNG_VALUES_FORMAT, maskValueTable } from './mask-values.ts';
import { decodeNpyMask } from './npy-mask.ts';

// masks.ts is the one import for masks: the geometry, the declared values and the .npy reader live beside it
export * from './mask-geometry.ts';
export * from './mask-values.ts';
export * from './npy-mask.ts';

/**
 * Masks of source images, shared by the pipeline (infills) and the trainer (saliency, AUPR).
 * Mask formats are the ones in the source manifest's `mask_format` column.
 */

/** Where a path came from, for error messages: the manifest/CSV/JSON file and the row in it. */
export interface PathContext {
  file: string;
  row?: number | string;
}

/**
 * IN-9's no_fg images are JPEGs: the blacked-out object is not exactly 0 after compression.
 * A pixel whose channels are all <= this counts as black.
 */
export const NOFG_BLACK_THRESHOLD = 10;

/**
 * Resolve a dataset-relative path, refusing absolute paths and `..` escapes: a manifest or CSV must not
 * make us read (or later overwrite) files outside the dataset root.
 */
export function resolveInsideRoot(root: string, rel: string, ctx: PathContext | string): string {
  const where = typeof ctx === 'string' ? { file: ctx } : ctx;
  const fix = `paths in ${where.file} must be relative to the dataset root (${root}) and stay inside it, e.g. "images/0001.jpg"`;
  if (typeof rel !== 'string' || rel === '') {
    throw new UserError('empty path', { ...where, fix });
  }
  if (isAbsolute(rel) || /^[a-zA-Z]:[\\/]/.test(rel) || rel.startsWith('\\')) {
    throw new UserError(`path "${rel}" is absolute`, { ...where, fix });
  }
  const absRoot = resolve(root);
  const abs = resolve(absRoot, rel);
  const back = relative(absRoot, abs);
  if (back === '' || back === '..' || back.startsWith(`..${sep}`) || isAbsolute(back)) {
    throw new UserError(`path "${rel}" escapes the dataset root`, { ...where, fix });
  }
  return abs;
}

/** Decode any image sharp reads into 8-bit pixels with the alpha channel (if any) last. */
async function decodePixels(file: string): Promise<{ width: number; height: number; channels: number; hasAlpha: boolean; data: Buffer }> {
  try {
    const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, channels: info.channels, hasAlpha: info.hasAlpha, data };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const msg = (e as Error).message;
    if (code === 'ENOENT' || /missing|no such file/i.test(msg)) {
      throw new UserError('file not found', { file, fix: 'restore the file, or remove the row that names it' });
    }
    throw new UserError(`cannot decode image (${msg})`, { file, fix: 'replace the file with a valid PNG/JPEG' });
  }
}

/**
 * PNG (or any image) mask: any nonzero colour channel is object. When the file has an alpha channel, a fully
 * transparent pixel is background (masks exported from editors are often opaque black + coloured object, or
 * transparent + object).
 */
export async function decodePngNonzero(file: string): Promise<Mask> {
  const px = await decodePixels(file);
  const m = newMask(px.width, px.height);
  if (px.channels === 1) {
    // the common CUB case: one grey channel; a single tight pass (this runs once per generated image)
    for (let i = 0; i < m.data.length; i++) m.data[i] = px.data[i] ? 1 : 0;
    return m;
  }
  const colour = px.hasAlpha ? px.channels - 1 : px.channels;
  for (let i = 0, p = 0; i < m.data.length; i++, p += px.channels) {
    let on = 0;
    for (let c = 0; c < colour; c++) if (px.data[p + c]) { on = 1; break; }
    if (on && px.hasAlpha && px.data[p + colour] === 0) on = 0;
    m.data[i] = on;
  }
  return m;
}

/** A one-channel mask PNG whose pixel values `table` marks (maskValueTable) are the object. */
export async function decodePngValues(file: string, table: Uint8Array): Promise<Mask> {
  let channels: number | undefined;
  try {
    channels = (await sharp(file).metadata()).channels;
  } catch {
    await decodePixels(file); // the same "file not found" / "cannot decode" errors as every other mask
  }
  // a palette PNG decodes to its colours, not its indices; grey + alpha keeps its grey values
  if (channels !== 1 && channels !== 2) {
    throw new UserError(`mask has ${channels} channels: declared mask values (${PNG_VALUES_FORMAT}) need a one-channel (grey) PNG of label values`, {
      file, fix: 'save the label map as an 8-bit grey PNG (a palette PNG decodes to colours, not to its indices)',
    });
  }
  // sharp's raw output of a grey PNG is sRGB (three equal channels): take the grey channel itself
  const { data, info } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const m = newMask(info.width, info.height);
  for (let i = 0; i < m.data.length; i++) m.data[i] = table[data[i]];
  return m;
}

/** Decode a PNG mask by its `mask_format`: `png-nonzero` (or null), or `png-values:<spec>`. */
export async function decodePngMask(file: string, format: string | null): Promise<Mask> {
  if (format !== null && format.startsWith(`${PNG_VALUES_FORMAT}:`)) return decodePngValues(file, maskValueTable(format.slice(PNG_VALUES_FORMAT.length + 1)));
  return decodePngNonzero(file);
}

/**
 * IN-9 train mask: the object is where the no_fg image is black (all channels <= threshold, to survive JPEG)
 * and the original image is not.
 */
export async function decodeNofgDiff(noFgFile: string, originalFile: string, threshold = NOFG_BLACK_THRESHOLD): Promise<Mask> {
  const [nofg, orig] = await Promise.all([decodePixels(noFgFile), decodePixels(originalFile)]);
  if (nofg.width !== orig.width || nofg.height !== orig.height) {
    throw new UserError(`no_fg image is ${nofg.width}x${nofg.height} but the original ${originalFile} is ${orig.width}x${orig.height}`, {
      file: noFgFile, fix: 'the no_fg image must be the original with the object blacked out, at the same size',
    });
  }
  const m = newMask(nofg.width, nofg.height);
  const isBlack = (px: typeof nofg, p: number): boolean => {
    const colour = px.hasAlpha ? px.channels - 1 : px.channels;
    for (let c = 0; c < colour; c++) if (px.data[p + c] > threshold) return false;
    return true;
  };
  for (let i = 0; i < m.data.length; i++) {
    m.data[i] = isBlack(nofg, i * nofg.channels) && !isBlack(orig, i * orig.channels) ? 1 : 0;
  }
  return m;
}

/**
 * Decode a source row's segmentation mask by its `mask_format`. Null when the row has none.
 * The mask must have the row's image size: a mismatch is a data error, never silently resized.
 */
export async function loadSegMask(root: string, row: SourceRow, ctx?: Partial<PathContext>): Promise<Mask | null> {
  if (!row.mask_path) return null;
  const where: PathContext = { file: ctx?.file ?? 'source manifest', row: ctx?.row ?? row.id };
  const maskFile = resolveInsideRoot(root, row.mask_path, where);
  let m: Mask;
  switch (row.mask_format) {
    case 'png-nonzero':
    case null:
      m = await decodePngNonzero(maskFile);
      break;
    case 'npy':
      m = await decodeNpyMask(maskFile);
      break;
    case 'nofg-diff':
      m = await decodeNofgDiff(maskFile, resolveInsideRoot(root, row.path, where));
      break;
    default:
      if (!row.mask_format.startsWith(`${PNG_VALUES_FORMAT}:`)) {
        throw new UserError(`unknown mask_format "${row.mask_format}"`, { ...where, fix: `use png-nonzero, ${PNG_VALUES_FORMAT}:<values>, npy or nofg-diff` });
      }
      m = await decodePngMask(maskFile, row.mask_format);
  }
  if (m.width !== row.width || m.height !== row.height) {
    throw new UserError(
      `mask ${maskFile} is ${m.width}x${m.height} but image ${resolve(root, row.path)} is ${row.width}x${row.height}`,
      { ...where, fix: 'masks must be aligned with their images at the same size; regenerate or resize the mask' },
    );
  }
  return m;
}
