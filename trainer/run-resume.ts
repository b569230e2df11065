import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { writeFileAtomic } from '../manifests/io.ts';
import {
  COMMIT_FILE, commitFolderName, copyInto, readCommit, stageCommitFolder, tidyRun, writeCommit, type RunCommit,
} from './run-commit.ts';
import { readMetricsHistory, readRunState, type RunState } from './run-state.ts';

/**
 * Reading a run folder back: the committed epoch a rerun resumes from (run-commit.ts), the best checkpoint `eval`
 * evaluates, and the one-time adoption of a run folder written before commits existed (state.json at the top,
 * real `last/` and `best/` folders, no commit.json).
 */

/** What a resumed run starts from: the committed epoch's state and history, and the folder of its checkpoint. */
export interface ResumePoint {
  commit: RunCommit;
  state: RunState;
  metricsLines: string[];
  /** the commit folder: model.json + weights.bin, optimizer.json + optimizer.bin */
  dir: string;
}

const FIX = 'pass --fresh to delete the run and start over, or --run-id <new id> for a new run';
/** Checkpoint files of a pre-commit `last/` folder, and of its `best/` folder. */
const LAST_FILES = ['model.json', 'weights.bin', 'optimizer.json', 'optimizer.bin'];
const BEST_FILES = ['model.json', 'weights.bin'];

const isDir = async (p: string): Promise<boolean> => (await lstat(p).catch(() => null))?.isDirectory() === true;

/**
 * Turn a pre-commit run folder into a committed one by copying: commits/epoch-N from last/ + state.json +
 * metrics.jsonl, commits/epoch-K from best/ when the best epoch K is another one, then commit.json. The old files
 * are only replaced once commit.json exists, so a crash midway leaves the old layout to adopt again. Null when the
 * folder is not such a run. Such a folder may hold a last/ newer than its state.json (the bug commits fix); the
 * digest check of its weights catches a half-written last/, not that.
 */
async function adoptPreCommitRun(runDir: string, log: (l: string) => void): Promise<RunCommit | null> {
  const last = join(runDir, 'last');
  if (!(await isDir(last))) return null;
  const state = await readRunState(runDir);
  if (!state || state.epoch < 1) return null;
  const metrics = await readMetricsHistory(runDir, state.epoch);
  let best: string | null = null;
  if (state.bestEpoch !== null && state.bestEpoch !== state.epoch && (await isDir(join(runDir, 'best')))) {
    best = await stageCommitFolder(runDir, commitFolderName(state.bestEpoch), (dir) => copyInto(join(runDir, 'best'), dir, BEST_FILES));
  }
  const folder = await stageCommitFolder(runDir, commitFolderName(state.epoch), async (dir) => {
    await copyInto(last, dir, LAST_FILES);
    await copyInto(runDir, dir, ['state.json']);
    await writeFileAtomic(join(dir, 'metrics.jsonl'), metrics.length ? metrics.join('\n') + '\n' : '');
  });
  if (state.bestEpoch === state.epoch) best = folder;
  const commit = await writeCommit(runDir, { epoch: state.epoch, last: folder, best });
  log(`run folder written before epoch commits: adopted epoch ${state.epoch} into ${folder} (last/ and best/ are links into commits/ from now on)`);
  return commit;
}

/**
 * The committed epoch a rerun resumes from, or null when no epoch has been committed; read under the run's lock.
 * Adopts a pre-commit run folder first, and removes what no commit names (an epoch folder whose commit a crash
 * cut short, temp files), saying so. A committed state that is missing or does not match commit.json is a
 * UserError, never a silent restart from epoch 0.
 */
export async function readResumePoint(runDir: string, log: (l: string) => void): Promise<ResumePoint | null> {
  const commit = (await readCommit(runDir)) ?? (await adoptPreCommitRun(runDir, log));
  if (!commit && (await lstat(join(runDir, 'state.json')).catch(() => null)) && (await isDir(join(runDir, 'commits')))) {
    throw new UserError(`the run has committed epochs (state.json, commits/) but no ${COMMIT_FILE} (deleted by hand?)`, { file: join(runDir, COMMIT_FILE), fix: FIX });
  }
  let point: ResumePoint | null = null;
  if (commit) {
    // Read (and so check) the committed records before tidyRun copies them to the top of the run folder.
    const dir = join(runDir, commit.last);
    const state = await readRunState(dir, FIX);
    if (!state || state.epoch !== commit.epoch) {
      throw new UserError(`the committed state does not match ${COMMIT_FILE} (epoch ${state?.epoch ?? 'missing'} vs ${commit.epoch})`, { file: join(dir, 'state.json'), fix: FIX });
    }
    point = { commit, state, metricsLines: await readMetricsHistory(dir, state.epoch), dir };
  }
  const removed = await tidyRun(runDir, commit);
  if (removed.length) log(`removed what no commit names (left by an interrupted run): ${removed.join(', ')}`);
  return point;
}

/**
 * The checkpoint folder `eval` evaluates and the state it was chosen in: the committed best epoch, or, for a run
 * written before commits, `best/` and the top-level state.json. Read-only: eval may run beside a training.
 */
export async function bestCheckpoint(runDir: string): Promise<{ bestDir: string; state: RunState | null }> {
  const commit = await readCommit(runDir);
  if (!commit) return { bestDir: join(runDir, 'best'), state: await readRunState(runDir) };
  return { bestDir: join(runDir, commit.best ?? 'best'), state: await readRunState(join(runDir, commit.last), FIX) };
}
