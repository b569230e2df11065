import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, utimes } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { EnvironmentError } from './env-errors.ts';

/**
 * An advisory lock per folder: a file created with O_EXCL (`open(file, 'wx')`) that holds who owns it. Only one
 * process can create it; the others either fail fast with a message naming the holder (generate: two runs on one
 * corpus) or wait for it (building a dataset that another process is already building). A lock whose holder died
 * on this machine (the pid no longer exists) is taken over with a log line; a holder on another machine cannot be
 * checked, so its lock is never taken over.
 *
 * Shared by both halves: generation locks each corpus folder, dataset builds lock the dataset, and the trainer may
 * lock its run folders the same way.
 */

/** What a lock file holds (JSON). */
export interface LockHolder {
  pid: number;
  hostname: string;
  /** ISO time the lock was taken */
  started: string;
  /** what the holder is doing, e.g. "cfgen generate" (shown in the message) */
  purpose?: string;
  /** random id of this acquisition, so a release never removes a lock someone else took over */
  token?: string;
}

/** A held lock; `release()` removes the file if it is still ours (never throws for a lock already gone). */
export interface Lock {
  readonly file: string;
  readonly holder: LockHolder;
  release(): Promise<void>;
}

/** The lock is held by a live process (or one on another machine): exits with the environment status (3). */
export class LockHeldError extends EnvironmentError {
  readonly holder: LockHolder;
  readonly lockFile: string;
  constructor(lockFile: string, holder: LockHolder, what: string) {
    const by = `pid ${holder.pid} on host ${holder.hostname} since ${holder.started}${holder.purpose ? ` (${holder.purpose})` : ''}`;
    super(`${what} by ${by}`, {
      file: lockFile,
      code: 'ELOCKED',
      fix: `wait for it, or remove the lock (rm ${lockFile}) if that process is gone`,
    });
    this.name = 'LockHeldError';
    this.holder = holder;
    this.lockFile = lockFile;
  }
}

/** How to take a lock. */
export interface LockOptions {
  /** what the holder does, recorded in the file and shown to whoever finds it held */
  purpose?: string;
  /** the message when held, before "by pid N on host H since T", e.g. "corpus cf-tile is being generated" */
  what?: string;
  /** wait (polling) while a live process holds it, instead of failing fast with LockHeldError */
  wait?: boolean;
  /** with `wait`: give up after this long (LockHeldError); default: wait as long as it takes */
  timeoutMs?: number;
  /** with `wait`: poll interval (default 200 ms) */
  pollMs?: number;
  /** one line when a stale lock is taken over, or when waiting starts */
  log?: (line: string) => void;
  /**
   * A lock whose file has not been refreshed (mtime) for this long counts as abandoned on any host, whatever its
   * pid says: the only way to tell that a holder on another machine died, and a guard against a pid reused in a
   * restarted container. Only for locks whose holders refresh them (`heartbeatMs` well below this).
   */
  staleMs?: number;
  /** while held, refresh the lock file's mtime this often, so takers using `staleMs` see a live holder */
  heartbeatMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Is the holder alive? 'dead' only when it is on this machine and its pid does not exist (ESRCH). EPERM means the
 * pid exists under another user; another machine's pid says nothing here, so that is 'unknown'.
 */
export function holderState(holder: LockHolder, host: string = hostname()): 'alive' | 'dead' | 'unknown' {
  if (holder.hostname !== host) return 'unknown';
  if (!Number.isInteger(holder.pid) || holder.pid <= 0) return 'dead';
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH' ? 'dead' : 'alive';
  }
  // kill(pid, 0) succeeds for a zombie: a killed process its parent has not reaped yet (forever in a container
  // whose PID 1 does not reap) holds nothing.
  return isZombie(holder.pid) ? 'dead' : 'alive';
}

/** The process is a zombie (Linux: state Z in /proc/<pid>/stat); false where /proc cannot tell. */
export function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the state follows the command name, which is in parentheses and may itself contain ") "
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/** Create `file` with `holder` as its content, only if it does not exist; false when it does (EEXIST). */
async function tryCreate(file: string, holder: LockHolder): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    // one write right after the create: a reader sees an empty file for microseconds at most (handled in readLock)
    await fh.writeFile(`${JSON.stringify(holder)}\n`);
    await fh.sync();
  } catch (e) {
    // a half-written lock would read as garbled to everyone else: take it back (e.g. ENOSPC on the write)
    await rm(file, { force: true }).catch(() => {});
    throw e;
  } finally {
    await fh.close().catch(() => {});
  }
  return true;
}

/** A lock file's content as a holder; an older lock that holds only a pid counts as this machine's. */
function parseHolder(text: string, mtime: Date): LockHolder | null {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { pid: Number(t), hostname: hostname(), started: mtime.toISOString() };
  try {
    const j = JSON.parse(t) as Partial<LockHolder>;
    if (typeof j.pid === 'number' && typeof j.hostname === 'string') {
      return { pid: j.pid, hostname: j.hostname, started: String(j.started ?? mtime.toISOString()), purpose: j.purpose, token: j.token };
    }
  } catch { /* below */ }
  return null;
}

/**
 * Who holds the lock at `file`: the holder, null when there is no lock file, or 'unreadable' when the file stays
 * empty or garbled (its creator died between creating and writing it, or someone wrote junk there).
 */
export async function readLock(file: string): Promise<LockHolder | null | 'unreadable'> {
  for (let attempt = 0; ; attempt++) {
    let text: string, mtime: Date;
    try {
      [text, mtime] = await Promise.all([readFile(file, 'utf8'), stat(file).then((s) => s.mtime)]);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const holder = parseHolder(text, mtime);
    if (holder) return holder;
    // a creator is between open and write: give it a moment before calling the file garbled
    if (attempt >= 10) return 'unreadable';
    await sleep(50);
  }
}

/** Milliseconds since the lock file was last written or refreshed; 0 when it is gone (released meanwhile). */
async function lockAgeMs(file: string): Promise<number> {
  try {
    return Date.now() - (await stat(file)).mtimeMs;
  } catch {
    return 0;
  }
}

const sameHolder = (a: LockHolder, b: LockHolder) => a.pid === b.pid && a.hostname === b.hostname && a.started === b.started && a.token === b.token;

/**
 * Replace the stale lock `stale` at `file` with ours. Two processes may find the same stale lock at once; a
 * short-lived guard file lets only one of them remove and recreate it, so they never both end up holding it.
 */
async function takeOver(file: string, stale: LockHolder | 'unreadable', me: LockHolder, staleMs?: number): Promise<boolean> {
  const guard = `${file}.takeover`;
  if (!(await tryCreate(guard, me))) {
    const g = await readLock(guard);
    // a guard whose owner died mid-takeover would block every later run (on another host: once it is old)
    if (g === 'unreadable' || (g && holderState(g) === 'dead') || (staleMs !== undefined && (await lockAgeMs(guard)) > staleMs)) await rm(guard, { force: true });
    return false;
  }
  try {
    const now = await readLock(file);
    if (now !== null) {
      if (now === 'unreadable' ? stale !== 'unreadable' : stale === 'unreadable' || !sameHolder(now, stale)) return false;
      await rm(file, { force: true });
    }
    return await tryCreate(file, me);
  } finally {
    await rm(guard, { force: true });
  }
}

/**
 * Take the lock at `file` (its folder is created): returns once this process holds it. A live holder makes it
 * throw LockHeldError (or, with `wait`, poll until the holder is gone); a dead holder on this machine, or a lock
 * file that stays unreadable, is taken over with a log line.
 */
export async function acquireLock(file: string, opts: LockOptions = {}): Promise<Lock> {
  await mkdir(dirname(file), { recursive: true });
  const me: LockHolder = {
    pid: process.pid, hostname: hostname(), started: new Date().toISOString(), purpose: opts.purpose, token: randomBytes(8).toString('hex'),
  };
  const t0 = Date.now();
  let told = false;
  for (;;) {
    if (await tryCreate(file, me)) return heldLock(file, me, opts.heartbeatMs);
    const holder = await readLock(file);
    if (holder === null) continue; // released between our create and our read
    const silentMs = opts.staleMs !== undefined && holder !== 'unreadable' ? await lockAgeMs(file) : 0;
    const abandoned = opts.staleMs !== undefined && silentMs > opts.staleMs;
    if (holder === 'unreadable' || abandoned || holderState(holder) === 'dead') {
      if (await takeOver(file, holder, me, opts.staleMs)) {
        opts.log?.(holder === 'unreadable'
          ? `took over the lock ${file}: it held no owner (a process died while creating it)`
          : abandoned
            ? `took over the abandoned lock ${file}: pid ${holder.pid} on ${holder.hostname} (since ${holder.started}) has not refreshed it for ${Math.round(silentMs / 1000)} s`
            : `took over the stale lock ${file}: pid ${holder.pid} on ${holder.hostname} (since ${holder.started}) is gone`);
        return heldLock(file, me, opts.heartbeatMs);
      }
      continue;
    }
    const what = opts.what ?? `${dirname(file)} is locked`;
    if (!opts.wait || (opts.timeoutMs !== undefined && Date.now() - t0 >= opts.timeoutMs)) throw new LockHeldError(file, holder, what);
    if (!told) {
      opts.log?.(`waiting: ${what} by pid ${holder.pid} on host ${holder.hostname} since ${holder.started}`);
      told = true;
    }
    await sleep(opts.pollMs ?? 200);
  }
}

function heldLock(file: string, me: LockHolder, heartbeatMs?: number): Lock {
  let released = false;
  // unref'd: a heartbeat never keeps a finished process alive; a failed refresh (file gone) is simply skipped
  const beat = heartbeatMs ? setInterval(() => { const t = new Date(); utimes(file, t, t).catch(() => {}); }, heartbeatMs) : null;
  beat?.unref();
  return {
    file,
    holder: me,
    async release() {
      if (released) return;
      released = true;
      if (beat) clearInterval(beat);
      // only our own lock: if it was taken over (we were wrongly thought dead), the new holder keeps it
      const now = await readLock(file).catch(() => null);
      if (now && now !== 'unreadable' && sameHolder(now, me)) await rm(file, { force: true });
    },
  };
}

/**
 * Run `fn` holding the lock at `file`; the lock is released however `fn` ends, and a failure to release never
 * hides `fn`'s own error.
 */
export async function withLock<T>(file: string, opts: LockOptions, fn: (lock: Lock) => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, opts);
  let result: T;
  try {
    result = await fn(lock);
  } catch (e) {
    await lock.release().catch(() => {});
    throw e;
  }
  await lock.release();
  return result;
}
