import sharp from 'sharp';
import fg from 'fast-glob';
import { statSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ManifestWriter, type ManifestMetadata, type SourceRow } from '../../manifests/index.ts';
import { UserError } from '../../manifests/errors.ts';
import { sha256Hex } from '../../manifests/io.ts';
import { PNG_VALUES_FORMAT, boundingBoxOfMask } from '../../manifests/masks.ts';
import { maskArea } from '../masks-ops.ts';
import type { Mask } from '../../manifests/pixels.ts';
import { DEFAULT_MAX_PIXELS, pixelLimitReason } from '../decode.ts';

/** What an adapter hands back: rows (any order) plus what goes into the manifest metadata. */
export interface AdapterResult {
  rows: SourceRow[];
  /** dataset-wide problems that are not errors of a row (printed as `warning: …`) */
  warnings?: string[];
  classNames: string[];
  /** adapter-specific config recorded in the manifest (counts dropped, fingerprints, options) */
  config: Record<string, unknown>;
}

export type Progress = (done: number, total: number, stage: string) => void;

export interface AdapterOptions {
  seed?: number;
  progress?: Progress;
  /** parallel image decodes; outputs never depend on it */
  concurrency?: number;
  /** images and masks with more pixels become error rows, from the header (default DEFAULT_MAX_PIXELS) */
  maxPixels?: number;
  /** folder datasets: read files whose real path is outside the dataset root (default: error rows) */
  followSymlinks?: boolean;
  /** PNG segmentation masks: the pixel values that are the object (canonical spec, `png-values:<spec>`); default nonzero */
  maskForeground?: string;
}

/** The mask_format of a PNG mask under these options: `png-values:<spec>` when values are declared, else `png-nonzero`. */
export function pngMaskFormat(opts: AdapterOptions): string {
  return opts.maskForeground ? `${PNG_VALUES_FORMAT}:${opts.maskForeground}` : 'png-nonzero';
}

/**
 * Counts masks that cover (nearly) their whole image. Trimaps and label maps read as "nonzero is object" cover
 * everything: every box becomes the whole image and every F image is skipped, with no error anywhere.
 */
export class MaskCoverage {
  masks = 0;
  full = 0;
  add(m: Mask): void {
    this.masks++;
    if (maskArea(m) >= 0.95 * m.width * m.height) this.full++;
  }
  /** A warning when most masks cover ≥ 95% of their image, else null. */
  warning(opts: AdapterOptions): string | null {
    if (!this.masks || this.full * 2 <= this.masks) return null;
    const how = opts.maskForeground ? `the declared object values (--mask-foreground ${opts.maskForeground})` : 'every nonzero pixel as object';
    return `${this.full} of ${this.masks} segmentation masks cover 95% or more of their image, read with ${how}: their boxes are the whole image and F methods will skip them. `
      + 'If the masks are trimaps or label maps, declare which values are the object, e.g. --mask-foreground 1,3 (Oxford-IIIT Pet: pet and border) or --mask-foreground 15 (one class of a label map).';
  }
}

export const DEFAULT_CONCURRENCY = 8;

/** A row with every nullable column null; adapters fill what they know. */
export function baseRow(fields: Pick<SourceRow, 'id' | 'split' | 'label' | 'class_name' | 'path'> & Partial<SourceRow>): SourceRow {
  return {
    mask_path: null, mask_format: null, boxes: null, group: null, place: null, location: null, variant: null,
    width: 0, height: 0, status: 'ok', error: null,
    ...fields,
  };
}

export function errorRow(row: SourceRow, message: string): SourceRow {
  return { ...row, status: 'error', error: message };
}

/**
 * Image size from the header (no full decode); throws UserError naming the file on a missing/unreadable image, and
 * on one with more than `maxPixels` pixels (default DEFAULT_MAX_PIXELS): decoding it later would take gigabytes.
 */
export async function probeImage(file: string, opts: { maxPixels?: number } = {}): Promise<{ width: number; height: number }> {
  try {
    await stat(file);
  } catch {
    throw new UserError('image file not found', { file, fix: 'restore the image, or remove its entry from the dataset index' });
  }
  let size: { width: number; height: number };
  try {
    // header only: sharp's own pixel limit must not fire here, ours below names the size and the flag
    const m = await sharp(file, { limitInputPixels: false }).metadata();
    if (!m.width || !m.height) throw new Error('no size in header');
    size = { width: m.width, height: m.height };
  } catch (e) {
    throw new UserError(`cannot decode image (${(e as Error).message})`, { file, fix: 'replace it with a valid JPEG/PNG or remove its entry' });
  }
  const limit = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (size.width * size.height > limit) throw new UserError(pixelLimitReason(size.width, size.height, limit), { file });
  return size;
}

/** Flat [x, y, w, h] of a mask's bounding box, or null when the mask is empty (such images train as originals). */
export function boxesOfMask(m: Mask): number[] | null {
  const b = boundingBoxOfMask(m);
  return b ? [b.x, b.y, b.w, b.h] : null;
}

/** Run `fn` over items with bounded concurrency; results keep the input order, so outputs never depend on timing. */
export async function mapLimit<T, R>(items: readonly T[], fn: (item: T, i: number) => Promise<R>, opts: { concurrency?: number; progress?: Progress; stage?: string } = {}): Promise<R[]> {
  // A fixed set of workers pulling the next index, not one queued closure and promise per item: at 100k images the
  // queue alone was kilobytes per image of peak memory.
  const out = new Array<R>(items.length);
  let next = 0, done = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
      done++;
      opts.progress?.(done, items.length, opts.stage ?? '');
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? DEFAULT_CONCURRENCY, items.length)) }, worker));
  return out;
}

/**
 * Run a per-image step, turning a UserError into an error row: one bad image must not stop a 10k-image ingest.
 * Any other exception is a bug and propagates.
 */
export async function rowOrError(row: SourceRow, step: (row: SourceRow) => Promise<SourceRow>): Promise<SourceRow> {
  try {
    return await step(row);
  } catch (e) {
    if (e instanceof UserError) return errorRow(row, e.message.replace(/\n\s*/g, ' '));
    throw e;
  }
}

/** "a10" < "a9" would be surprising in a listing; compare digit runs as numbers, then plain code points. */
export function naturalCompare(a: string, b: string): number {
  const ra = a.split(/(\d+)/), rb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    if (ra[i] === rb[i]) continue;
    if (i % 2 === 1) {
      const d = Number(ra[i]) - Number(rb[i]);
      if (d !== 0) return d;
      return ra[i].length - rb[i].length;
    }
    return ra[i] < rb[i] ? -1 : 1;
  }
  if (ra.length !== rb.length) return ra.length - rb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

const SPLIT_ORDER = ['train', 'val', 'test', 'cis_val', 'cis_test', 'trans_test'];

export function compareRows(a: SourceRow, b: SourceRow): number {
  const sa = SPLIT_ORDER.indexOf(a.split), sb = SPLIT_ORDER.indexOf(b.split);
  const ra = sa < 0 ? SPLIT_ORDER.length : sa, rb = sb < 0 ? SPLIT_ORDER.length : sb;
  if (ra !== rb) return ra - rb;
  if (a.split !== b.split) return a.split < b.split ? -1 : 1;
  return naturalCompare(a.id, b.id);
}

/** Throw on duplicate ids: the id is the join key of every later stage. */
export function assertUniqueIds(rows: readonly SourceRow[], file: string): void {
  const seen = new Set<string>();
  for (const r of rows) {
    if (seen.has(r.id)) throw new UserError(`duplicate image id "${r.id}"`, { file, fix: 'every image must appear once per dataset' });
    seen.add(r.id);
  }
}

/**
 * Write the source manifest: rows sorted, stale shards of an earlier (larger) run removed first so a reader never
 * mixes two runs. Same rows + metadata → byte-identical shards.
 */
export async function writeSourceManifest(dir: string, metadata: ManifestMetadata, rows: SourceRow[]): Promise<{ path: string; sha256: string; rows: number }[]> {
  const sorted = [...rows].sort(compareRows);
  try {
    for (const f of await readdir(dir)) if (/^source-\d+\.arrow$/.test(f)) await rm(join(dir, f));
  } catch { /* no folder yet */ }
  const w = new ManifestWriter<SourceRow>(dir, 'source', metadata, { prefix: 'source' });
  for (const r of sorted) await w.write(r);
  return w.close();
}

/** Rows per split / group and the error rows, for the CLI summary. */
export function summarizeRows(rows: readonly SourceRow[]): { total: number; bySplit: Record<string, number>; byGroup: Record<string, Record<string, number>>; errors: SourceRow[] } {
  const bySplit: Record<string, number> = {};
  const byGroup: Record<string, Record<string, number>> = {};
  const errors: SourceRow[] = [];
  for (const r of rows) {
    bySplit[r.split] = (bySplit[r.split] ?? 0) + 1;
    const g = r.group ?? '(none)';
    (byGroup[r.split] ??= {})[g] = (byGroup[r.split][g] ?? 0) + 1;
    if (r.status === 'error') errors.push(r);
  }
  return { total: rows.length, bySplit, byGroup, errors };
}

export const IMAGE_EXT = /\.(jpe?g|png|webp|tiff?|gif|avif)$/i;

/**
 * SHA-256 over the sorted relative paths and byte sizes of a dataset's files, plus the full hash of its index files
 * (CSV / JSON): a cheap "did the dataset change" check, recorded in the manifest config as `fingerprint` so
 * `ensureSourceManifest` rebuilds when files are added, removed or replaced, without re-reading any image.
 */
export async function listingFingerprint(root: string, patterns: string[], indexFiles: readonly string[] = [], opts: { followSymlinks?: boolean } = {}): Promise<string> {
  // not following links keeps a link to / from walking the whole disk; adapters that follow them say so
  // paths first, sizes after, one file at a time: fast-glob's `stats: true` stats a whole folder at once and keeps
  // every fs.Stats object (about 250 MB of heap for a folder of 100k images, the largest part of `dataset`'s peak).
  // A followed link has its target's size, as fast-glob reported it; a file gone since the listing counts as size 0.
  const lines: string[] = [];
  const stream = fg.stream(patterns, { cwd: root, onlyFiles: true, dot: false, followSymbolicLinks: opts.followSymlinks ?? true });
  for await (const path of stream as AsyncIterable<string>) {
    if (/\.tmp-/.test(path)) continue;
    let size = 0;
    try {
      size = statSync(join(root, path)).size;
    } catch { /* removed meanwhile */ }
    lines.push(`${path}\t${size}`);
  }
  lines.sort();
  for (const f of indexFiles) {
    try {
      lines.push(`${f}\tsha256:${sha256Hex(await readFile(join(root, f)))}`);
    } catch {
      lines.push(`${f}\tabsent`);
    }
  }
  return sha256Hex(lines.join('\n'));
}

/** Relative paths of image files directly inside `<root>/<dir>/<class>/`, grouped by class folder, sorted. */
export async function listClassFolders(root: string, dir: string): Promise<Map<string, string[]>> {
  const files = await fg('*/*', { cwd: join(root, dir), onlyFiles: true });
  const byClass = new Map<string, string[]>();
  for (const f of files.filter((f) => IMAGE_EXT.test(f)).sort(naturalCompare)) {
    const [cls, name] = f.split('/');
    if (!byClass.has(cls)) byClass.set(cls, []);
    byClass.get(cls)!.push(name);
  }
  return byClass;
}

export async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
