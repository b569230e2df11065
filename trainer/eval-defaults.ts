/**
 * Defaults of the final evaluation, in a file of their own so that `cfgen train --help` / `cfgen eval --help` can
 * show them without loading tfjs.
 */
export const EVAL_DEFAULTS = { batchSize: 64, auprImages: 200, egSamples: 16 } as const;

/** Decoded validation images a training run keeps between epochs, in MiB (`--val-cache-mb`; validation.ts). */
export const VAL_CACHE_MB = 256;
