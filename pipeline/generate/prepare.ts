import { boundingBoxOfMask, boxesToMask, loadSegMask } from '../../manifests/masks.ts';
import { resolveInsideRoot } from '../../manifests/masks.ts';
import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import type { MaskKind } from '../infills/types.ts';
import { DEFAULT_MAX_PIXELS, TRANSIENT_CODES, decodeImageFile, pixelLimitReason } from '../decode.ts';
import { maskArea, resizeMaskAnyOver, unionMask } from '../masks-ops.ts';
import { maskCacheKey, readMaskEntry, writeMaskEntry, type CachedMasks } from './mask-cache.ts';
import { relativeToRoot } from './paths.ts';

/**
 * One source row made ready for the infills: pixels at the output size, the object mask (segmentation where the
 * dataset has one, else the union of boxes) and the box hole, both resized so the object never shrinks.
 * Anything that stops an image from being used comes back as `skipped` (no object: DESIGN §1) or `error` (bad data),
 * with a message that names the file and the fix, so the caller records it and the run goes on.
 */
export type Prepared =
  | { status: 'ok'; image: RGBImage; object: Mask; objectKind: MaskKind; box: Mask }
  | { status: 'skipped' | 'error'; reason: string };

/** Where a row's files live and the size to bring them to. */
export interface PrepareOptions {
  /** dataset root: row paths are relative to it */
  root: string;
  /** output size; null keeps the stored size */
  size: { width: number; height: number } | null;
  /** refuse images with more pixels than this (default DEFAULT_MAX_PIXELS), before decoding them or their mask */
  maxPixels?: number;
  /**
   * the mask cache folder (mask-cache.ts, `maskCacheFor(ctx)`): masks decoded by an earlier method, worker or run are
   * read from it instead of decoding the mask file again. Null or absent: decode every time. The result is the same.
   */
  maskCache?: string | null;
}

/** Decode, resize and mask one source row; never throws for bad data (see Prepared). */
export async function prepareRow(row: SourceRow, opts: PrepareOptions): Promise<Prepared> {
  if (row.status !== 'ok') return { status: 'skipped', reason: `source row has status ${row.status}: ${row.error ?? 'no reason given'}` };
  const hasBoxes = !!row.boxes && row.boxes.length >= 4;
  if (!row.mask_path && !hasBoxes) {
    return { status: 'skipped', reason: 'no object annotation (mask_path and boxes are both null): trains as an original only' };
  }
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  // the manifest's size came from the image header at ingest: refuse before either file is decoded (the mask has
  // the image's size, so it is bounded too); the decoder checks the header again in case the file changed since
  if (row.width * row.height > maxPixels) return { status: 'error', reason: `${row.path}: ${pixelLimitReason(row.width, row.height, maxPixels)}` };
  try {
    const file = resolveInsideRoot(opts.root, row.path, { file: 'source manifest', row: row.id });
    // the output size is known before decoding (the stored size is checked against the file below), so the masks
    // are made side by side with the image decode (two sharp calls in flight instead of one after the other)
    const out = opts.size ?? { width: row.width, height: row.height };
    const [img, made] = await Promise.allSettled([decodeImageFile(file, opts.size ?? undefined, { maxPixels }), rowMasks(row, opts, out.width, out.height)]);
    if (img.status === 'rejected') throw img.reason;
    if (made.status === 'rejected') throw made.reason;
    const decoded = img.value;
    if (decoded.storedWidth !== row.width || decoded.storedHeight !== row.height) {
      return {
        status: 'error',
        reason: `${row.path}: image is ${decoded.storedWidth}x${decoded.storedHeight} but the source manifest says ${row.width}x${row.height}; fix: rebuild the source manifest (make dataset)`,
      };
    }
    const masks = made.value;
    if (masks.status !== 'ok') return masks;
    return { status: 'ok', image: decoded.image, object: masks.object, objectKind: masks.objectKind, box: masks.box };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) throw e; // the machine's state, not the row's
    return { status: 'error', reason: relativeToRoot((e as Error).message, opts.root) };
  }
}

type MadeMasks = ({ status: 'ok' } & CachedMasks) | { status: 'skipped' | 'error'; reason: string };

/**
 * The row's masks at W×H: from the mask cache when it holds them, else decoded (and then stored, when usable).
 * Only rows with a mask file use the cache: box-only rows have nothing to decode.
 */
async function rowMasks(row: SourceRow, opts: PrepareOptions, W: number, H: number): Promise<MadeMasks> {
  const cache = opts.maskCache && row.mask_path ? opts.maskCache : null;
  const key = cache ? await maskCacheKey(opts.root, row, W, H) : null;
  if (cache && key) {
    const hit = await readMaskEntry(cache, key, W, H);
    if (hit) return { status: 'ok', ...hit };
  }
  const made = masksOf(row, await loadSegMask(opts.root, row), W, H);
  if (cache && key && made.status === 'ok') await writeMaskEntry(cache, key, made);
  return made;
}

/**
 * The object mask (segmentation, else the union of boxes) and the CF hole of a row at W×H, from its decoded
 * segmentation (or null), resized so the object never shrinks (DESIGN §1).
 */
function masksOf(row: SourceRow, seg: Mask | null, W: number, H: number): MadeMasks {
  let boxAtStored: Mask | null = null;
  if (row.boxes && row.boxes.length >= 4) {
    boxAtStored = boxesToMask(row.boxes, row.width, row.height);
    if (!maskArea(boxAtStored)) {
      const finite = validBoxes(row.boxes);
      if (finite.length) {
        return {
          status: 'error',
          reason: `${row.id}: box${finite.length > 1 ? 'es' : ''} ${finite.map((b) => `[${b.join(', ')}]`).join(' ')} lie${finite.length > 1 ? '' : 's'} outside the ${row.width}x${row.height} image; fix: boxes must be [x, y, w, h] in stored-image pixels`,
        };
      }
      boxAtStored = null; // only NaN / empty boxes: no usable box
    }
  }
  const objectStored = seg ?? boxAtStored;
  const object = objectStored ? resizeMaskAnyOver(objectStored, W, H) : null;
  const bbox = object ? boundingBoxOfMask(object) : null;
  if (!object || !bbox) {
    return { status: 'skipped', reason: 'empty mask: no object pixels, so no CF or F image (DESIGN §1); it still trains as an original' };
  }
  // CF hole: the union of the annotated boxes, else the segmentation's bounding rectangle (DESIGN §1)
  // (both given: their union, so the hole covers every pixel either annotation calls object)
  const segBox = boxesToMask([bbox.x, bbox.y, bbox.w, bbox.h], W, H);
  const box = boxAtStored ? (seg ? unionMask(resizeMaskAnyOver(boxAtStored, W, H), segBox) : object) : segBox;
  return { status: 'ok', object, objectKind: seg ? 'seg' : 'box', box };
}

function validBoxes(flat: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i + 3 < flat.length; i += 4) {
    const b = flat.slice(i, i + 4);
    if (b.every(Number.isFinite) && b[2] > 0 && b[3] > 0) out.push(b);
  }
  return out;
}
