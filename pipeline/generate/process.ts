import pLimit from 'p-limit';
import type { CorpusRow, SourceRow } from '../../manifests/index.ts';
import { pluginModules, type InfillMethod } from '../infills/index.ts';
import { createRowRunner } from './pool.ts';
import { processBatchShard } from './batch.ts';
import type { DonorIndex } from './donors.ts';
import type { MethodPlan, RowJob, RowResult, RunContext, WrittenFile } from './item.ts';
import type { CorpusPlan } from './plan.ts';
import type { Progress } from './progress.ts';
import { writeShard, type DoneMarker, type ShardSlice } from './shards.ts';

/**
 * The shard loop of `generate`: decode each source row once for all its methods, run the infills (worker threads
 * for sync methods, the main thread for batched ones), write each method's part and done marker. The caller decides
 * which shards and methods (all pending ones under the corpus lock, or the claimed ones of a sharded worker) by
 * handing in `ShardWork` items as it gets them.
 */

/** One method's corpus during a run. */
export interface MethodState {
  m: InfillMethod;
  plan: MethodPlan;
  corpus: CorpusPlan;
  /** per shard: its done marker once done (resumed or written), else null */
  markers: (DoneMarker | null)[];
  /** shards found done when the run started */
  resumed: number;
}

/** One shard to write for some of the methods. */
export interface ShardWork {
  shard: ShardSlice;
  states: MethodState[];
  /** just before a method's part is written: false leaves it unwritten (a sharded worker that lost its claim) */
  mayWrite?(st: MethodState): Promise<boolean>;
  /** once the shard is written or has failed (a sharded worker releases its claims) */
  finished?(): Promise<void>;
}

/** What the loop needs besides the work. */
export interface LoopContext {
  workers: number;
  seed: number;
  ctx: RunContext;
  rows: SourceRow[];
  donors: DonorIndex;
  /** every method of the run (batched ones are closed at the end) */
  methods: InfillMethod[];
  /** start worker threads (some sync method has work) */
  needsRunner: boolean;
  progress: Progress;
  log: (l: string) => void;
  onShardDone?: (method: string, shard: number) => void | Promise<void>;
}

/** Run every ShardWork, at most two shards in flight; returns the number of images written. */
export async function processShards(work: AsyncIterable<ShardWork>, c: LoopContext): Promise<number> {
  const runner = c.needsRunner ? await createRowRunner(c.workers, c.ctx, pluginModules()) : null;
  let imagesWritten = 0;
  // at most two shards in flight: enough to keep the workers busy across a shard boundary, memory stays flat
  const inFlight: Promise<void>[] = [];
  try {
    const rowLimit = pLimit(runner?.inflight ?? Math.max(1, c.workers));
    // batched (model) infills run one call at a time, in shard order: a model session is not shared concurrently
    let batchTurn: Promise<void> = Promise.resolve();
    for await (const w of work) {
      const s = w.shard;
      const todo = w.states;
      const syncNames = todo.filter((st) => st.m.mode === 'sync').map((st) => st.m.name);
      const slice = c.rows.slice(s.start, s.end);
      const myTurn = batchTurn;
      let endTurn!: () => void;
      batchTurn = new Promise<void>((resolve) => { endTurn = resolve; });
      const job = (async () => {
        try {
          const perMethodRows = new Map<string, CorpusRow[]>(todo.map((st) => [st.m.name, []]));
          const perMethodFiles = new Map<string, WrittenFile[]>(todo.map((st) => [st.m.name, []]));
          try {
            if (syncNames.length) {
              const results: RowResult[] = await Promise.all(slice.map((row, k) => rowLimit(async () => {
                const r = await runner!.run(makeJob(s.start + k, row, syncNames, todo, c.donors, c.seed));
                c.progress.tick();
                return r;
              })));
              for (const r of results) {
                for (const name of syncNames) {
                  perMethodRows.get(name)!.push(...r.rows[name]);
                  perMethodFiles.get(name)!.push(...r.files[name]);
                }
              }
            }
            await myTurn;
            for (const st of todo) {
              if (st.m.mode !== 'batch') continue;
              const got = await processBatchShard(st.m, st.plan, slice.map((row, k) => ({ index: s.start + k, row })), c.ctx, c.workers, () => { if (!syncNames.length) c.progress.tick(); });
              perMethodRows.set(st.m.name, got.rows);
              perMethodFiles.set(st.m.name, got.files);
            }
          } finally {
            // also when this shard failed: the next shard's batch call must not wait for a turn that never ends
            endTurn();
          }
          for (const st of todo) {
            if (w.mayWrite && !(await w.mayWrite(st))) continue;
            const files = perMethodFiles.get(st.m.name)!;
            imagesWritten += files.length;
            st.markers[s.index] = await writeShard(st.plan.dir, s.index, st.corpus.metadata, perMethodRows.get(st.m.name)!, files, st.corpus.config_hash);
            await c.onShardDone?.(st.m.name, s.index);
          }
        } finally {
          await w.finished?.();
        }
      })();
      job.catch(() => {}); // a failure surfaces when it is awaited below, never as an unhandled rejection
      inFlight.push(job);
      if (inFlight.length >= 2) await inFlight.shift();
    }
    await Promise.all(inFlight);
  } catch (e) {
    // the other shard in flight may still be writing: let it stop before the locks are released, so no file of
    // this run is written after another run may have started on the corpus
    await Promise.allSettled(inFlight);
    throw e;
  } finally {
    // cleanup failures (a worker that will not terminate, a model session that fails to close) must not replace
    // the error that stopped the run, and must not go unnoticed after a run that succeeded
    const cleanup = await Promise.allSettled([runner?.close(), ...c.methods.map((m) => (m.mode === 'batch' ? m.close?.() : undefined))]);
    const bad = cleanup.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) c.log(`warning: cleanup after the run failed: ${(bad.reason as Error)?.message ?? String(bad.reason)}`);
  }
  return imagesWritten;
}

function makeJob(index: number, row: SourceRow, names: string[], states: MethodState[], donors: DonorIndex, seed: number): RowJob {
  const job: RowJob = { index, row, methods: names, donors: {} };
  for (const st of states) {
    if (!names.includes(st.m.name) || !st.m.donors) continue;
    const n = st.m.donors.count(st.plan.params);
    if (n <= 0) continue;
    const perVariant: SourceRow[][] = [];
    for (let v = 0; v < st.plan.variants; v++) {
      perVariant.push(donors.candidates(row, n + st.m.donors.spares, st.m.donors.otherClass, seed, st.m.name, v));
    }
    job.donors[st.m.name] = perVariant;
  }
  return job;
}
