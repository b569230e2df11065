import * as tf from '@tensorflow/tfjs-core';
import type { SourceRow } from '../manifests/schema.ts';
import { evalBatches } from './data-eval.ts';
import { VAL_CACHE_MB } from './eval-defaults.ts';
import { validationResult, type ValResult } from './evaluate.ts';
import type { Model } from './model.ts';
import type { ValMetric } from './presets.ts';

/**
 * The validation images of a run, decoded for every epoch's validation pass. Decoding them again each epoch costs
 * time; keeping them all costs S·S·3·4 bytes an image (600 KB at 224 px), which grows with the validation split.
 * So the leading batches are kept decoded up to a byte budget and the rest stream from disk each epoch, in the same
 * batches, so the logits do not depend on the budget (default VAL_CACHE_MB, `--val-cache-mb`).
 */

export { VAL_CACHE_MB };


/** A batch of decoded validation images: `n` images of S×S×3, NHWC in [−1, 1]. */
interface ValBatch { x: Float32Array; n: number }

/** The decoded validation set, cached up to a byte budget (see above). */
export class ValidationSet {
  private readonly cache: ValBatch[] = [];
  private cachedRows = 0;
  /** every batch after the cached ones is streamed: set once the first pass met a batch over the budget */
  private full = false;
  private filled = false;

  /**
   * @param rows the validation rows, in order
   * @param opts size: eval side S; batchSize: images per batch; cacheBytes: the budget (0 streams every epoch)
   */
  constructor(
    private readonly root: string,
    readonly rows: readonly SourceRow[],
    private readonly opts: { size: number; batchSize: number; cacheBytes: number; concurrency?: number },
  ) {}

  /** Bytes of decoded images held between epochs (never more than the budget). */
  get cachedBytes(): number {
    return this.cache.reduce((a, b) => a + b.x.byteLength, 0);
  }

  /** The batches of one pass, in row order: the cached ones, then the rest decoded now (the first pass fills the cache). */
  async *batches(): AsyncGenerator<ValBatch> {
    const { size, batchSize, concurrency, cacheBytes } = this.opts;
    if (this.filled) yield* this.cache;
    else { this.cache.length = 0; this.cachedRows = 0; this.full = false; } // a first pass cut short starts over
    // Cached batches are whole batches from the start, so the rest starts on a batch boundary: same batches as one pass.
    const rest = this.filled ? this.rows.slice(this.cachedRows) : this.rows;
    if (!rest.length) return;
    let held = this.cachedBytes;
    for await (const b of evalBatches(this.root, rest, { size, batchSize, concurrency })) {
      const batch = { x: b.x, n: b.n };
      if (!this.filled && !this.full && held + b.x.byteLength <= cacheBytes) {
        this.cache.push(batch);
        this.cachedRows += b.n;
        held += b.x.byteLength;
      } else {
        this.full = true;
      }
      yield batch;
    }
    this.filled = true;
  }
}

/** One validation pass: the logits of every validation image, then the run's validation metric and loss. */
export async function validate(model: Model, set: ValidationSet, size: number, metric: ValMetric): Promise<ValResult> {
  const k = model.config.numClasses;
  const logits = new Float32Array(set.rows.length * k);
  let at = 0;
  for await (const b of set.batches()) {
    const l = tf.tidy(() => model.apply(tf.tensor4d(b.x, [b.n, size, size, 3])));
    logits.set(l.dataSync() as Float32Array, at * k);
    l.dispose();
    at += b.n;
  }
  return validationResult(logits, set.rows, k, metric);
}
