import { boundingBoxOfMask, boxesToMask, loadSegMask } from '../../manifests/masks.ts';
import { resolveInsideRoot } from '../../manifests/masks.ts';
import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import type { MaskKind } from '../infills/types.ts';
import { DEFAULT_MAX_PIXELS, TRANSIENT_CODES, decodeImageFile, pixelLimitReason } from '../decode.ts';
import { maskArea, resizeMaskAnyOver, unionMask } from '../masks-ops.ts';
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
    // image and mask decode side by side (two sharp calls in flight instead of one after the other)
    const [img, segMask] = await Promise.allSettled([decodeImageFile(file, opts.size ?? undefined, { maxPixels }), loadSegMask(opts.root, row)]);
    if (img.status === 'rejected') throw img.reason;
    if (segMask.status === 'rejected') throw segMask.reason;
    const decoded = img.value;
    const seg = segMask.value;
    if (decoded.storedWidth !== row.width || decoded.storedHeight !== row.height) {
      return {
        status: 'error',
        reason: `${row.path}: image is ${decoded.storedWidth}x${decoded.storedHeight} but the source manifest says ${row.width}x${row.height}; fix: rebuild the source manifest (make dataset)`,
      };
    }
    const { width: W, height: H } = decoded.image;

    let boxAtStored: Mask | null = null;
    if (hasBoxes) {
      boxAtStored = boxesToMask(row.boxes!, row.width, row.height);
      if (!maskArea(boxAtStored)) {
        const finite = validBoxes(row.boxes!);
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
    return { status: 'ok', image: decoded.image, object, objectKind: seg ? 'seg' : 'box', box };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) throw e; // the machine's state, not the row's
    return { status: 'error', reason: relativeToRoot((e as Error).message, opts.root) };
  }
}

function validBoxes(flat: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let i = 0; i + 3 < flat.length; i += 4) {
    const b = flat.slice(i, i + 4);
    if (b.every(Number.isFinite) && b[2] > 0 && b[3] > 0) out.push(b);
  }
  return out;
}
