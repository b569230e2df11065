import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { shardName } from '../../manifests/index.ts';
import { acquireLock, holderState, readLock, type Lock, type LockHolder, LockHeldError } from '../../common/lock.ts';
import { stateDir } from './shards.ts';

/**
 * Per-shard claims for sharded generation (`--shard-index/--shard-count`, Slurm arrays, Kubernetes Indexed Jobs).
 * Workers of one corpus never take the corpus lock while they generate (it would serialize them); instead a worker
 * claims each shard it is about to write: `<corpus>/state/part-NNNNN.claim`, created with O_EXCL through
 * common/lock.ts, holding pid, host and a token. The claim is refreshed every `heartbeatMs`, so a claim left by a
 * worker that died on another machine (or in a restarted container that reused the pid) is taken over once it has
 * been silent for `staleMs`; on the same machine a dead pid is taken over at once.
 *
 * Two workers on one shard therefore take turns: the second waits, then finds the shard done and skips it. Should a
 * worker be frozen for longer than `staleMs` and its claim taken over, both write the same bytes (every byte is a
 * function of the config) through atomic renames, and the frozen one checks its claim before it writes the part.
 */

/** How long a claim may go unrefreshed before another worker takes it over, and how often a holder refreshes it. */
export interface ClaimTiming {
  staleMs: number;
  heartbeatMs: number;
}

/**
 * Default timing: stale after 120 s (or `$CFGEN_CLAIM_STALE_S`), refreshed every sixth of that. Long enough that a
 * loaded shared filesystem never makes a live worker look dead; short enough that a requeued task waits minutes at
 * most for a dead one's claim.
 */
export function claimTiming(env: NodeJS.ProcessEnv = process.env): ClaimTiming {
  const s = Number(env.CFGEN_CLAIM_STALE_S);
  const staleMs = Number.isFinite(s) && s > 0 ? s * 1000 : 120_000;
  return { staleMs, heartbeatMs: Math.max(50, Math.floor(staleMs / 6)) };
}

/** The claim file of shard `index` of the corpus in `dir`. */
export const claimPath = (dir: string, index: number): string => join(stateDir(dir), shardName('part', index).replace(/\.arrow$/, '.claim'));

/** A held claim on one shard of one corpus. */
export interface Claim {
  dir: string;
  shard: number;
  lock: Lock;
  /** still ours? false once another worker took it over (we were silent too long) */
  stillOurs(): Promise<boolean>;
  release(): Promise<void>;
}

/**
 * Claim shard `index` of the corpus in `dir`. Without `wait`, null when a live worker holds it; with `wait`, polls
 * until the holder releases it or is found dead/silent. A dead or silent holder's claim is taken over (logged).
 */
export async function claimShard(
  dir: string, index: number, opts: { wait: boolean; timing: ClaimTiming; log: (l: string) => void; name: string },
): Promise<Claim | null> {
  const file = claimPath(dir, index);
  let lock: Lock;
  try {
    lock = await acquireLock(file, {
      purpose: `cfgen generate (${opts.name}, shard ${index})`, what: `shard ${index} of ${opts.name} is being generated`,
      wait: opts.wait, pollMs: 250, staleMs: opts.timing.staleMs, heartbeatMs: opts.timing.heartbeatMs, log: opts.log,
    });
  } catch (e) {
    if (!opts.wait && e instanceof LockHeldError) return null;
    throw e;
  }
  return {
    dir, shard: index, lock,
    async stillOurs() {
      const now = await readLock(file).catch(() => null);
      return !!now && now !== 'unreadable' && now.token === lock.holder.token;
    },
    release: () => lock.release(),
  };
}

/** A claim file found in a corpus's state folder, with its holder and whether that holder still looks alive. */
export interface ClaimSeen {
  file: string;
  holder: LockHolder | 'unreadable';
  live: boolean;
}

/**
 * The shard claims present in a corpus's state folder. `live`: the holder's pid exists on this machine, or (on any
 * machine) it refreshed the claim within `staleMs`. Used under the corpus lock, by finalize and a single-process run,
 * to refuse while sharded workers are still writing.
 */
export async function claimsIn(dir: string, timing: ClaimTiming): Promise<ClaimSeen[]> {
  let names: string[];
  try {
    // a takeover guard (common/lock.ts) left by a worker killed mid-takeover counts like a claim: live or leftover
    names = (await readdir(stateDir(dir))).filter((n) => n.endsWith('.claim') || n.endsWith('.claim.takeover')).sort();
  } catch {
    return [];
  }
  const out: ClaimSeen[] = [];
  for (const n of names) {
    const file = join(stateDir(dir), n);
    const holder = await readLock(file).catch(() => null);
    if (holder === null) continue;
    let fresh = false;
    try { fresh = Date.now() - (await stat(file)).mtimeMs <= timing.staleMs; } catch { continue; }
    const live = holder !== 'unreadable' && fresh && holderState(holder) !== 'dead';
    out.push({ file, holder, live });
  }
  return out;
}

/** One line naming who holds a claim, for messages. */
export function describeClaim(c: ClaimSeen): string {
  return c.holder === 'unreadable' ? `${c.file} (unreadable)` : `${c.file}: pid ${c.holder.pid} on host ${c.holder.hostname} since ${c.holder.started}`;
}
