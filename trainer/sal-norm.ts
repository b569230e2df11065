/**
 * How the saliency penalty is normalised (no tfjs here, so the CLI can validate `--sal-norm` before loading it):
 * - `authors`: the authors' code, `((grad[has_mask] * (1 − mask)) ** 2).mean() * λ` added to the already averaged
 *   loss: per image Σ_j bg_j Σ_c g² / (C·H·W), averaged over the originals that have a mask, not divided again by
 *   the number of images in the augmented batch.
 * - `background-area`: DESIGN §4's GradMask form, per image Σ_j bg_j Σ_c g² / Σ_j bg_j, summed over the originals
 *   and divided by the number of images in the augmented batch like every other term (this project's form before
 *   `authors` became the default; the same λ weighs about 1.25–3.75× more in it).
 */
export type SalNorm = 'authors' | 'background-area';
export const SAL_NORMS: readonly SalNorm[] = ['authors', 'background-area'];
