import pLimit from 'p-limit';
import { rngFor } from '../../manifests/rng.ts';
import type { CorpusRow, SourceRow } from '../../manifests/schema.ts';
import type { BatchInfill, BatchItem, InfillResult } from '../infills/types.ts';
import { prepareRow, type Prepared } from './prepare.ts';
import { maskCacheFor } from './mask-cache.ts';
import { boxColumn, compositeRegion, startVariantRow, writeOutput, type MethodPlan, type RunContext, type WrittenFile } from './item.ts';

/**
 * A batched (model) infill over one shard, on the main thread: rows are decoded `batchSize` at a time (decode runs
 * `concurrency` wide on sharp's threads), every (row, variant) with a hole goes into one applyBatch call, and each
 * answer is composited x·(1−r) + out·r before it is written, so only the hole can change whatever the model did.
 */
export async function processBatchShard(
  m: BatchInfill, plan: MethodPlan, rows: { index: number; row: SourceRow }[], ctx: RunContext, concurrency: number,
  onRow: () => void,
): Promise<{ rows: CorpusRow[]; files: WrittenFile[] }> {
  const outRows: CorpusRow[] = [];
  const files: WrittenFile[] = [];
  const limit = pLimit(Math.max(1, concurrency));
  const per = Math.max(1, m.batchSize);
  for (let b = 0; b < rows.length; b += per) {
    const chunk = rows.slice(b, b + per);
    const prepared: Prepared[] = await Promise.all(chunk.map(({ row }) => limit(() => prepareRow(row, { root: ctx.root, size: ctx.size, maxPixels: ctx.maxPixels, maskCache: maskCacheFor(ctx) }))));
    const pending: { row: CorpusRow; item: BatchItem; prep: Extract<Prepared, { status: 'ok' }> }[] = [];
    chunk.forEach(({ row: src }, k) => {
      const p = prepared[k];
      const box = p.status === 'ok' ? boxColumn(p) : undefined;
      for (let v = 0; v < plan.variants; v++) {
        const { row, ready } = startVariantRow(src, m, plan, v, ctx, p, box);
        outRows.push(row);
        if (!ready) continue;
        pending.push({ row, prep: ready.prep, item: { image: ready.prep.image, region: ready.region, rng: rngFor(ctx.seed, src.id, m.name, v), sourceId: src.id, variant: v } });
      }
    });
    let results: InfillResult[] = [];
    if (pending.length) {
      try {
        results = await m.applyBatch(pending.map((p) => p.item), plan.params);
        if (results.length !== pending.length) throw new Error(`returned ${results.length} results for ${pending.length} items`);
      } catch (e) {
        for (const p of pending) { p.row.status = 'error'; p.row.error = `${m.name} failed: ${(e as Error).message}`; }
        results = [];
      }
    }
    await Promise.all(results.map((res, k) => limit(async () => {
      const { row, item } = pending[k];
      if (res.status !== 'ok') { row.status = 'skipped'; row.error = res.reason; return; }
      try {
        const out = compositeRegion(item.image, item.region, res.image);
        files.push(await writeOutput(row, out, plan, ctx));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code) throw e; // disk errors stop the run (the shard stays undone)
        row.status = 'error';
        row.error = `${m.name} failed: ${(e as Error).message}`;
      }
    })));
    for (let k = 0; k < chunk.length; k++) onRow();
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { rows: outRows, files };
}
