import pLimit from 'p-limit';
import { resolveInsideRoot } from '../manifests/masks.ts';
import type { SourceRow } from '../manifests/schema.ts';
import { decodeResized, resizeMask, writeNormalised } from './augment.ts';
import { objectMaskOf } from './data-masks.ts';

/** The eval stream: source rows resized to S×S (no crop or flip), for validation, testing and saliency. */

/** A batch of eval-preprocessed images (resized to S×S), with masks when asked. */
export interface EvalBatch {
  size: number;
  n: number;
  x: Float32Array;
  labels: Int32Array;
  rows: SourceRow[];
  /** [n, S, S] object masks resized to S×S (any-over), when requested; rows without one are all zero */
  masks: Float32Array | null;
  hasMask: Uint8Array;
}

/** Eval batches: resize to S×S, no crop or flip; masks (when asked) resized the same way. */
export async function* evalBatches(
  root: string, rows: readonly SourceRow[], opts: { size: number; batchSize: number; withMasks?: boolean; concurrency?: number; prefetch?: number },
): AsyncGenerator<EvalBatch> {
  const S = opts.size;
  const limit = pLimit(opts.concurrency ?? 8);
  const nBatches = Math.ceil(rows.length / opts.batchSize);
  const start = async (k: number): Promise<EvalBatch> => {
    const part = rows.slice(k * opts.batchSize, (k + 1) * opts.batchSize);
    const b: EvalBatch = {
      size: S, n: part.length, x: new Float32Array(part.length * S * S * 3), labels: new Int32Array(part.length), rows: part,
      masks: opts.withMasks ? new Float32Array(part.length * S * S) : null, hasMask: new Uint8Array(part.length),
    };
    await Promise.all(part.map((row, i) => limit(async () => {
      const where = { file: 'source manifest', row: row.id };
      const img = await decodeResized(resolveInsideRoot(root, row.path, where), S, S, where);
      writeNormalised(img, b.x, i * S * S * 3);
      b.labels[i] = row.label;
      if (b.masks) {
        const obj = await objectMaskOf(root, row);
        if (obj) {
          const m = resizeMask(obj.mask, S, S);
          b.hasMask[i] = 1;
          for (let p = 0; p < S * S; p++) b.masks[i * S * S + p] = m.data[p];
        }
      }
    })));
    return b;
  };
  const queue: Promise<EvalBatch>[] = [];
  let next = 0;
  const park = (p: Promise<EvalBatch>): void => { p.catch(() => undefined); queue.push(p); };
  while (next < nBatches && queue.length < Math.max(1, opts.prefetch ?? 2)) park(start(next++));
  while (queue.length) {
    const b = await queue.shift()!;
    if (next < nBatches) park(start(next++));
    yield b;
  }
}
