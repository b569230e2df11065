import { DEFAULT_HOLES } from './holes.ts';
import type { TrainOptions } from './train.ts';

/** Defaults of `cfgen inpainter`, apart from the trainer so that `--help` shows them without loading tfjs. */
export const TRAIN_DEFAULTS: TrainOptions = {
  steps: 250, batch: 16, size: 64, width: 24, lr: 1e-3, seed: 0, outsideWeight: 0.1, holes: DEFAULT_HOLES,
};

/** The generator's input side must be a multiple of this (two stride-2 convolutions). */
export const SIZE_MULTIPLE = 4;
