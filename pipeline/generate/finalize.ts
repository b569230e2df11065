import { readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CORPUS_INFO_FILE, UserError, writeJsonAtomic, type CorpusInfo } from '../../manifests/index.ts';
import { LockHeldError, acquireLock, type Lock } from '../../common/lock.ts';
import { claimsIn, describeClaim, type ClaimTiming } from './claims.ts';
import { corpusLockPath } from './locks.ts';
import { readPlan, type CorpusPlan } from './plan.ts';
import {
  corpusIdOf, moveLegacyMarkers, removeExtraParts, removeTempFiles, shardState, stampShards, type DoneMarker, type ShardCounts,
} from './shards.ts';
import { ownerOf } from './sharding.ts';

/**
 * Finalize a corpus: once every shard is done, compute the corpus id, stamp it into every part and write
 * corpus.json, the file that makes a corpus complete. A single-process `generate` does it at its end; sharded
 * workers have the last one to finish try it, and `cfgen finalize` does it on its own (the dependent job of a Slurm
 * array). Always under the corpus lock, so exactly one process stamps, and never while a live worker holds a
 * shard claim: a worker that is still writing would replace a stamped part with an unstamped one.
 */

/** What finalizing a corpus found. */
export type FinalizeResult =
  | { state: 'done'; corpusId: string; counts: ShardCounts; shards: number; markers: DoneMarker[] }
  | { state: 'incomplete'; missing: number[]; why: string[] }
  | { state: 'busy'; why: string };

/** Done markers of every shard of `plan`, read and checked against the rows (null where a shard is not done). */
async function doneMarkers(dir: string, plan: CorpusPlan, log: (l: string) => void): Promise<{ markers: (DoneMarker | null)[]; why: string[] }> {
  const markers: (DoneMarker | null)[] = [];
  const why: string[] = [];
  for (let i = 0; i < plan.shards; i++) {
    const st = await shardState(dir, i, plan.config_hash);
    if (st.state === 'done') { markers.push(st.marker); continue; }
    markers.push(null);
    const reason = st.state === 'missing' ? 'not written' : st.state === 'other-config' ? 'written with another configuration' : st.why;
    why.push(`shard ${i}: ${reason}`);
    if (st.state === 'stale') log(`${plan.name}: shard ${i} is not done (${st.why})`);
  }
  return { markers, why };
}

/**
 * Finalize the corpus in `dir` described by `plan`. The caller holds the corpus lock. `known`: markers this process
 * has just written or verified under that lock (a single-process run), so they are not read again.
 */
export async function finalizeLocked(
  dir: string, plan: CorpusPlan, o: { timing: ClaimTiming; log: (l: string) => void; known?: DoneMarker[] },
): Promise<FinalizeResult> {
  const live = (await claimsIn(dir, o.timing)).filter((c) => c.live);
  if (live.length) return { state: 'busy', why: `a worker still holds ${live.length} shard claim(s): ${describeClaim(live[0])}` };
  let markers: DoneMarker[];
  if (o.known && o.known.length === plan.shards && o.known.every(Boolean)) markers = o.known;
  else {
    const got = await doneMarkers(dir, plan, o.log);
    const missing = got.markers.flatMap((m, i) => (m ? [] : [i]));
    if (missing.length) return { state: 'incomplete', missing, why: got.why };
    markers = got.markers as DoneMarker[];
  }
  // nothing is writing now (no live claim, and we hold the lock): what a killed worker left can go
  for (const c of await claimsIn(dir, o.timing)) await rm(c.file, { force: true });
  const temps = await removeTempFiles(dir);
  if (temps) o.log(`${plan.name}: removed ${temps} temp file(s) left by an interrupted run`);
  const extra = await removeExtraParts(dir, plan.shards);
  if (extra.length) o.log(`${plan.name}: removed ${extra.join(', ')} from manifest/: not one of the ${plan.shards} parts of this corpus`);
  const moved = await moveLegacyMarkers(dir, plan.shards);
  if (moved) o.log(`${plan.name}: moved ${moved} done marker(s) from manifest/ to state/`);
  // marker counts were recomputed from (resumed) or written from (new) the shard's rows: never taken on trust
  const counts: ShardCounts = { ok: 0, skipped: 0, error: 0 };
  for (const mk of markers) for (const k of ['ok', 'skipped', 'error'] as const) counts[k] += mk.counts[k];
  const hashes = markers.map((mk) => mk.content_hash);
  const corpusId = corpusIdOf(plan.tool_version, plan.config, plan.source_digest, hashes);
  await stampShards(dir, plan.shards, { ...plan.metadata, corpus_id: corpusId });
  await writeJsonAtomic(join(dir, CORPUS_INFO_FILE), {
    corpus_id: corpusId, tool_version: plan.tool_version, dataset: plan.dataset, method: plan.method, name: plan.name,
    kind: plan.kind, config: plan.config, config_hash: plan.config_hash, source_digest: plan.source_digest, shards: plan.shards,
    counts, files: counts.ok, shard_hashes: hashes, dataset_root: plan.metadata.dataset_root,
  });
  return { state: 'done', corpusId, counts, shards: plan.shards, markers };
}

/** Take the corpus lock of `dir` for finalizing: fail fast (null when held), or wait up to `waitMs`. */
export async function lockForFinalize(dir: string, name: string, o: { waitMs?: number; log: (l: string) => void }): Promise<Lock | null> {
  try {
    return await acquireLock(corpusLockPath(dir), {
      purpose: `cfgen finalize (${name})`, what: `the ${name} corpus is being generated or finalized`,
      wait: o.waitMs !== undefined, timeoutMs: o.waitMs, log: o.log,
    });
  } catch (e) {
    if (o.waitMs === undefined && e instanceof LockHeldError) return null;
    throw e;
  }
}

/** The outcome of `cfgen finalize` on one corpus folder. */
export interface FinalizeReport {
  dir: string;
  name: string;
  result: FinalizeResult;
}

/**
 * `cfgen finalize <dir>`: read the plan the workers recorded, take the corpus lock (waiting up to `waitMs` for a
 * worker that is finalizing it already) and finalize. A folder without a plan but with corpus.json was finished by
 * a single-process run: nothing to do. `shardCount`: the workers' count, to name the tasks to resubmit.
 */
export async function finalizeCorpus(dir: string, o: { timing: ClaimTiming; log: (l: string) => void; waitMs?: number; shardCount?: number }): Promise<FinalizeReport> {
  const plan = await readPlan(dir);
  if (!plan) {
    // a corpus finished before plans were recorded is complete as it is
    const info = await readFile(join(dir, CORPUS_INFO_FILE), 'utf8').then((t) => JSON.parse(t) as CorpusInfo, () => null);
    if (info?.corpus_id) {
      return { dir, name: basename(dir), result: { state: 'done', corpusId: info.corpus_id, counts: info.counts ?? { ok: 0, skipped: 0, error: 0 }, shards: info.shards, markers: [] } };
    }
    throw new UserError('nothing to finalize: no state/plan.json (no generate has started on this corpus)', {
      file: dir, fix: 'run the generate workers first (scripts/slurm/submit.sh), or a single `npx tsx cfgen.ts generate`',
    });
  }
  const lock = await lockForFinalize(dir, plan.name, { waitMs: o.waitMs ?? 600_000, log: o.log });
  try {
    const result = await finalizeLocked(dir, plan, o);
    if (result.state === 'incomplete' && o.shardCount) {
      const tasks = [...new Set(result.missing.map((s) => ownerOf(s, o.shardCount!)))].sort((a, b) => a - b);
      result.why.push(`owned by worker(s) ${tasks.join(',')} of ${o.shardCount}: resubmit them, e.g. sbatch --array=${tasks.join(',')} --export=ALL,CFGEN_SHARD_COUNT=${o.shardCount} … scripts/slurm/generate.sbatch`);
    }
    return { dir, name: plan.name, result };
  } finally {
    await lock!.release().catch(() => {});
  }
}
