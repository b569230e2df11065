import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock, holderState, LockHeldError, readLock, type Lock } from '../common/lock.ts';
import { UserError } from '../manifests/errors.ts';
import { COMMIT_FILE } from './run-commit.ts';
import { readResumePoint, type ResumePoint } from './run-resume.ts';
import { assertSameRun, readRunConfig, type RunConfig } from './run-state.ts';

/**
 * One training process per run folder. The folder is locked (common/lock.ts: pid + host, a dead holder on this
 * machine is taken over) before anything in it is read for resuming or written, and stays locked until the run
 * has been evaluated; a second `train` of the same run stops at once and names the holder.
 */

/** The lock file in a run folder. */
export const RUN_LOCK_FILE = 'train.lock';

const what = (runId: string): string => `run "${runId}" is being trained`;

/**
 * Fail now, before minutes of corpus generation and index loading, when a live process holds the run's lock. Reads
 * only: the lock is taken by holdRunFolder once every check has passed.
 */
export async function assertRunNotLocked(runDir: string, runId: string): Promise<void> {
  const file = join(runDir, RUN_LOCK_FILE);
  const holder = await readLock(file);
  if (holder && holder !== 'unreadable' && holderState(holder) !== 'dead') throw new LockHeldError(file, holder, what(runId));
}

/** A run folder this process holds: its lock (release it when the run is done) and the committed epoch to resume from. */
export interface HeldRun {
  lock: Lock;
  /** null: start from epoch 0 (a new run, --fresh, or no epoch committed yet) */
  resume: ResumePoint | null;
}

/**
 * Create and lock the run folder; then, holding the lock, empty it for --fresh, or check once more that it is the
 * same run (another process may have restarted it since the checks) and read the committed epoch to resume from.
 */
export async function holdRunFolder(runDir: string, config: RunConfig, o: { fresh: boolean; log: (l: string) => void }): Promise<HeldRun> {
  await mkdir(runDir, { recursive: true });
  const lock = await acquireLock(join(runDir, RUN_LOCK_FILE), { purpose: `cfgen train, run ${config.runId}`, what: what(config.runId), log: o.log });
  try {
    if (o.fresh) {
      for (const e of await readdir(runDir)) if (e !== RUN_LOCK_FILE) await rm(join(runDir, e), { recursive: true, force: true });
      return { lock, resume: null };
    }
    const fix = 'pass --fresh to delete this run and start over, or --run-id <new id> for a new run';
    if (existsSync(join(runDir, 'config.json'))) assertSameRun(await readRunConfig(runDir, fix), config, runDir);
    else if (existsSync(join(runDir, COMMIT_FILE)) || existsSync(join(runDir, 'state.json'))) {
      // Checkpoints whose settings are unknown: resuming them as this run, or training over them, would both be guesses.
      throw new UserError('the run folder has trained epochs but no config.json (deleted by hand?)', { file: join(runDir, 'config.json'), fix });
    }
    return { lock, resume: await readResumePoint(runDir, o.log) };
  } catch (e) {
    await lock.release().catch(() => undefined);
    throw e;
  }
}
