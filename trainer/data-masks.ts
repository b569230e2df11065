import { boxesToMask, loadSegMask } from '../manifests/masks.ts';
import type { SourceRow } from '../manifests/schema.ts';
import type { Mask } from '../manifests/pixels.ts';

/** The object masks the trainer uses: one rule for the train crop, Sal/FGSM and the saliency AUPR. */

/**
 * The mask used for the crop and for Sal/FGSM (DESIGN §1): the segmentation mask where the dataset has one, else
 * the union of the boxes (CCT), else none. `seg` is false when it came from boxes.
 */
export async function objectMaskOf(root: string, row: SourceRow): Promise<{ mask: Mask; seg: boolean } | null> {
  if (row.mask_path) {
    const m = await loadSegMask(root, row);
    if (m) return { mask: m, seg: true };
  }
  if (row.boxes && row.boxes.length >= 4) return { mask: boxesToMask(row.boxes, row.width, row.height), seg: false };
  return null;
}
