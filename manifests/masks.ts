import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { UserError } from './errors.ts';
import { newMask, type Box, type Mask } from './pixels.ts';
import type { SourceRow } from './schema.ts';

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

/**
 * The union of boxes (flat [x, y, w, h, ...]) as a mask, clipped to the image. A pixel the box only partly
 * covers is object (floor of the start, ceil of the end): DESIGN §1, never shrink the object.
 * Boxes with a non-finite coordinate or a non-positive size are ignored (the real CCT has NaN boxes).
 */
export function boxesToMask(boxes: readonly number[], width: number, height: number): Mask {
  const m = newMask(width, height);
  for (let i = 0; i + 3 < boxes.length; i += 4) {
    const [x, y, w, h] = [boxes[i], boxes[i + 1], boxes[i + 2], boxes[i + 3]];
    if (![x, y, w, h].every(Number.isFinite) || w <= 0 || h <= 0) continue;
    const x0 = Math.max(0, Math.floor(x));
    const y0 = Math.max(0, Math.floor(y));
    const x1 = Math.min(width, Math.ceil(x + w));
    const y1 = Math.min(height, Math.ceil(y + h));
    for (let yy = y0; yy < y1; yy++) m.data.fill(1, yy * width + x0, Math.max(yy * width + x0, yy * width + x1));
  }
  return m;
}

/** Tight integer bounding box of the object pixels; null for an empty mask. */
export function boundingBoxOfMask(m: Mask): Box | null {
  const W = m.width, n = W * m.height;
  const data = m.data.length > n ? m.data.subarray(0, n) : m.data; // bytes past the last row are no pixels
  // the first and last set pixels give the rows; only pixels outside the columns found so far can widen the box,
  // so each row in between is scanned from its ends inward and the middle is never read
  const first = firstSetIndex(data);
  if (first < 0) return null;
  const last = lastSetIndex(data);
  const y0 = Math.floor(first / W), y1 = Math.floor(last / W);
  let x0 = Math.min(first - y0 * W, last - y1 * W), x1 = Math.max(first - y0 * W, last - y1 * W);
  for (let off = y0 * W; off <= y1 * W; off += W) {
    for (let x = 0; x < x0; x++) if (data[off + x]) { x0 = x; break; }
    for (let x = W - 1; x > x1; x--) if (data[off + x]) { x1 = x; break; }
  }
  return { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

/**
 * A mask's bytes as `head` unaligned bytes, then 4-byte words through an Int32Array view of the aligned middle (a
 * word is 0 exactly when its 4 bytes are), then the tail bytes: the word-at-a-time mask scans here and in
 * pipeline/masks-ops.ts read masks through it.
 */
export function alignedSpan(d: Uint8Array): { head: number; words: Int32Array } {
  const head = Math.min(d.length, (4 - (d.byteOffset & 3)) & 3);
  const n = (d.length - head) >>> 2;
  return { head, words: n === 0 ? new Int32Array(0) : new Int32Array(d.buffer, d.byteOffset + head, n) };
}

/** Index of the first nonzero byte of d, or −1. */
function firstSetIndex(d: Uint8Array): number {
  const { head, words } = alignedSpan(d);
  for (let i = 0; i < head; i++) if (d[i]) return i;
  let k = 0;
  while (k < words.length && words[k] === 0) k++;
  for (let i = head + (k << 2); i < d.length; i++) if (d[i]) return i;
  return -1;
}

/** Index of the last nonzero byte of d, or −1. */
function lastSetIndex(d: Uint8Array): number {
  const { head, words } = alignedSpan(d);
  const bodyEnd = head + (words.length << 2);
  for (let i = d.length - 1; i >= bodyEnd; i--) if (d[i]) return i;
  let k = words.length - 1;
  while (k >= 0 && words[k] === 0) k--;
  for (let i = head + (k << 2) + 3; i >= 0; i--) if (d[i]) return i;
  return -1;
}

/** The box mask of a segmentation mask: its bounding rectangle filled (empty stays empty). DESIGN §1: CF holes. */
export function boxMaskOf(m: Mask): Mask {
  const b = boundingBoxOfMask(m);
  return b ? boxesToMask([b.x, b.y, b.w, b.h], m.width, m.height) : newMask(m.width, m.height);
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

/**
 * Declared mask values: `mask_format` `png-values:<spec>` says which pixel values of a one-channel mask PNG are the
 * object, every other value (0, and a VOC-style 255 border unless listed) being background. The spec lists values
 * and ranges, e.g. `1,3` (Oxford-IIIT Pet trimaps: 1 pet, 2 background, 3 border) or `1-20` (the classes of a label
 * map). Plain `png-nonzero` would read such masks as "object everywhere".
 */
export const PNG_VALUES_FORMAT = 'png-values';

/** The canonical spec of a `--mask-foreground` value (sorted, merged ranges), or a UserError naming the flag. */
export function canonicalMaskValues(spec: string, flag = '--mask-foreground'): string {
  const on = maskValueTable(spec, flag);
  const parts: string[] = [];
  for (let v = 0; v < 256; v++) {
    if (!on[v]) continue;
    let e = v;
    while (e + 1 < 256 && on[e + 1]) e++;
    parts.push(e === v ? String(v) : e === v + 1 ? `${v},${e}` : `${v}-${e}`);
    v = e;
  }
  return parts.join(',');
}

/** 256 entries, 1 for the values `spec` calls object. */
export function maskValueTable(spec: string, flag = 'mask_format'): Uint8Array {
  const on = new Uint8Array(256);
  const bad = (why: string): never => {
    throw new UserError(`${flag} "${spec}": ${why}`, { fix: 'list the mask values that are the object, as values and ranges from 0 to 255: e.g. 1,3 or 1-20' });
  };
  const items = spec.split(',').map((t) => t.trim());
  if (!spec.trim() || items.some((t) => t === '')) bad('empty item');
  for (const t of items) {
    const m = /^(\d{1,3})(?:-(\d{1,3}))?$/.exec(t);
    if (!m) bad(`"${t}" is not a value or a range`);
    const a = Number(m![1]), b = m![2] === undefined ? a : Number(m![2]);
    if (a > 255 || b > 255 || b < a) bad(`"${t}" is not within 0-255, low to high`);
    on.fill(1, a, b + 1);
  }
  return on;
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

/** A parsed NumPy array, values widened to float64 for the nonzero test. */
export interface NpyArray {
  shape: number[];
  descr: string;
  values: Float64Array;
}

/**
 * Parse a NumPy .npy file (format versions 1-3). Supported dtypes: bool, uint8, int64, float32, float64 (either
 * byte order). Fortran order is refused: its element order differs and a silent transpose would misplace the mask.
 */
export function parseNpy(bytes: Uint8Array, file: string): NpyArray {
  const fail = (why: string): never => {
    throw new UserError(`not a readable .npy mask: ${why}`, { file, fix: 'save the mask with numpy.save(path, mask) as a C-ordered bool/uint8/float/int64 array of shape [H, W] or [H, W, C]' });
  };
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) fail('missing the \\x93NUMPY magic');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  let headerLen: number, headerStart: number;
  if (major === 1) { headerLen = dv.getUint16(8, true); headerStart = 10; }
  else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail('truncated header');
    headerLen = dv.getUint32(8, true); headerStart = 12;
  } else return fail(`unsupported format version ${major}`);
  if (headerStart + headerLen > bytes.length) fail('truncated header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeStr = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeStr === undefined) return fail(`cannot parse header ${header.trim()}`);
  if (fortran === 'True') {
    throw new UserError('the .npy mask is stored in Fortran order (fortran_order: True), which is not supported', {
      file, fix: 'rewrite it in C order: numpy.save(path, numpy.ascontiguousarray(mask))',
    });
  }
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) fail(`bad shape (${shapeStr})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const little = descr[0] !== '>';
  const kind = descr.replace(/^[<>|=]/, '');
  const size = ({ b1: 1, u1: 1, i8: 8, f4: 4, f8: 8 } as Record<string, number>)[kind];
  if (!size) fail(`unsupported dtype '${descr}' (use bool, uint8, int64, float32 or float64)`);
  const dataStart = headerStart + headerLen;
  if (bytes.length - dataStart < count * size) fail(`data is truncated: shape (${shape.join(', ')}) needs ${count * size} bytes, file has ${bytes.length - dataStart}`);
  const values = new Float64Array(count);
  for (let i = 0, o = dataStart; i < count; i++, o += size) {
    switch (kind) {
      case 'b1': case 'u1': values[i] = bytes[o]; break;
      case 'i8': values[i] = Number(dv.getBigInt64(o, little)); break;
      case 'f4': values[i] = dv.getFloat32(o, little); break;
      case 'f8': values[i] = dv.getFloat64(o, little); break;
    }
  }
  return { shape, descr, values };
}

/** .npy mask: nonzero is object (NaN is not); [H, W] or [H, W, C] with any-over-channels. */
export async function decodeNpyMask(file: string): Promise<Mask> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch {
    throw new UserError('file not found', { file, fix: 'restore the .npy mask, or remove the row that names it' });
  }
  const arr = parseNpy(bytes, file);
  if (arr.shape.length !== 2 && arr.shape.length !== 3) {
    throw new UserError(`mask has shape (${arr.shape.join(', ')}); expected [H, W] or [H, W, C]`, { file, fix: 'save a 2-D mask or an HWC array' });
  }
  const [h, w] = arr.shape;
  const c = arr.shape[2] ?? 1;
  const m = newMask(w, h);
  for (let i = 0; i < w * h; i++) {
    for (let k = 0; k < c; k++) {
      const v = arr.values[i * c + k];
      if (v > 0 || v < 0) { m.data[i] = 1; break; }
    }
  }
  return m;
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
