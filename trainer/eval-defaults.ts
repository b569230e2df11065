/**
 * Defaults of the final evaluation, in a file of their own so that `cfgen train --help` / `cfgen eval --help` can
 * show them without loading tfjs.
 */
export const EVAL_DEFAULTS = { batchSize: 64, auprImages: 200, egSamples: 16 } as const;
