import { rngFor } from '../manifests/rng.ts';
import type { TrainBatch } from './data.ts';

/**
 * How the data-parallel step (parallel.ts) splits a batch: into shards of whole originals, each with its own CF/F
 * images, balanced by image count, with a seed per shard.
 */

/** Per-shard seed: shard 0 keeps the step's seed; the others get independent streams (FGSM starts, mixup draws). */
export function shardSeed(stepSeed: number, shard: number): number {
  return shard === 0 ? stepSeed : rngFor('parallel-shard', stepSeed, shard).int(2 ** 31);
}

/** Originals [lo, hi) of a batch with their generated images (in batch order), as a TrainBatch of its own. */
export function sliceBatch(batch: TrainBatch, lo: number, hi: number): TrainBatch {
  const S = batch.size, px = S * S * 3;
  const rows: number[] = [];
  for (let i = lo; i < hi; i++) rows.push(i);
  for (let i = batch.nOrig; i < batch.n; i++) if (batch.parent[i] >= lo && batch.parent[i] < hi) rows.push(i);
  const n = rows.length, nOrig = hi - lo;
  const out: TrainBatch = {
    size: S, nOrig, n, x: new Float32Array(n * px), labels: new Int32Array(n), role: new Uint8Array(n), parent: new Int32Array(n),
    term: new Int16Array(n), ids: [], objMask: batch.objMask ? batch.objMask.slice(lo * S * S, hi * S * S) : null,
    maskUsable: batch.maskUsable.slice(lo, hi),
  };
  rows.forEach((r, j) => {
    out.x.set(batch.x.subarray(r * px, (r + 1) * px), j * px);
    out.labels[j] = batch.labels[r];
    out.role[j] = batch.role[r];
    out.parent[j] = batch.parent[r] - lo;
    out.term[j] = batch.term[r];
    out.ids.push(batch.ids[r]);
  });
  return out;
}

/**
 * Splits a batch into at most `parts` shards of contiguous originals, balanced by image count (an original brings
 * its CF/F images along). Shards never mix an original's images, and none is empty.
 */
export function shardBatch(batch: TrainBatch, parts: number): TrainBatch[] {
  const k = Math.max(1, Math.min(parts, batch.nOrig));
  if (k === 1) return [batch];
  const weight = new Array<number>(batch.nOrig).fill(1);
  for (let i = batch.nOrig; i < batch.n; i++) weight[batch.parent[i]]++;
  const total = weight.reduce((a, b) => a + b, 0);
  const shards: TrainBatch[] = [];
  let lo = 0, acc = 0;
  for (let s = 1; s <= k; s++) {
    let hi = lo;
    const target = (total * s) / k;
    // take originals until the cumulative weight reaches this shard's share, leaving one for every later shard
    while (hi < batch.nOrig - (k - s) && (hi === lo || acc + weight[hi] / 2 <= target)) acc += weight[hi++];
    if (s === k) while (hi < batch.nOrig) acc += weight[hi++];
    shards.push(sliceBatch(batch, lo, hi));
    lo = hi;
  }
  return shards;
}
