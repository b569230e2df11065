import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, open, readdir, readFile, readlink, rename, rm, symlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { holderState } from '../common/lock.ts';
import { UserError } from '../manifests/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../manifests/io.ts';

/**
 * How a run's epochs reach the disk (docs/training.md, "Run folder"). Everything an epoch leaves (weights,
 * optimizer state, state.json, metrics.jsonl) is written into a new folder `commits/epoch-NNNN.tmp-*`, synced,
 * renamed to `commits/epoch-NNNN`, and only then named by `commit.json`, written atomically. That write is the one
 * commit point: a crash before it leaves the previous epoch committed and the new folder unreferenced (removed at
 * the next start); a crash after it leaves the new epoch committed. Resuming reads nothing but what commit.json
 * names, so a run never pairs weights of one epoch with the state, optimizer or history of another.
 *
 * `last`, `best` (symlinks into commits/) and the top-level state.json and metrics.jsonl are refreshed after each
 * commit for people and scripts; nothing reads them to resume.
 */

/** The commit point of a run folder. */
export const COMMIT_FILE = 'commit.json';
/** The folder of committed (and, after a crash, uncommitted) epoch folders. */
export const COMMITS_DIR = 'commits';
const COMMIT_FORMAT = 'cfgen-run-commit';

/** `commit.json`: the epoch committed last, and the folders (relative to the run folder) of it and of the best epoch. */
export interface RunCommit {
  format: typeof COMMIT_FORMAT;
  version: 1;
  /** epochs finished */
  epoch: number;
  /** `commits/epoch-NNNN`: checkpoint, optimizer state, state.json and metrics.jsonl of that epoch */
  last: string;
  /** the commit folder of the best validation epoch (its checkpoint is what `eval` evaluates); null before one */
  best: string | null;
}

/** The commit folder name of epoch `epoch` (1-based count of finished epochs). */
export function commitFolderName(epoch: number): string {
  return `epoch-${String(epoch).padStart(4, '0')}`;
}

const FOLDER = /^commits\/epoch-\d{4,}$/;
const tmpSuffix = (): string => `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

/** fsync a folder, so the renames in it survive a power cut; a platform that cannot open folders skips it. */
async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    if (!['EISDIR', 'EPERM', 'EINVAL', 'EBADF', 'EACCES'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await fh?.close();
  }
}

/**
 * The run's commit.json; null when there is none (no epoch committed yet). One that is there but unreadable, or
 * that names a folder that is not there, is a UserError: starting over silently would discard the run.
 */
export async function readCommit(runDir: string): Promise<RunCommit | null> {
  const file = join(runDir, COMMIT_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const fix = 'pass --fresh to delete the run and start over, or --run-id <new id> for a new run';
  let c: RunCommit;
  try {
    c = JSON.parse(text) as RunCommit;
    if (c.format !== COMMIT_FORMAT || c.version !== 1 || !Number.isInteger(c.epoch) || c.epoch < 1 || !FOLDER.test(c.last) || (c.best !== null && !FOLDER.test(c.best))) {
      throw new Error('not a commit record');
    }
  } catch (e) {
    throw new UserError(`the run's commit record is corrupt (${(e as Error).message})`, { file, fix });
  }
  for (const f of [c.last, c.best]) {
    if (f && !(await lstat(join(runDir, f)).catch(() => null))?.isDirectory()) {
      throw new UserError(`commit.json names ${f}, which is not there (deleted by hand?)`, { file, fix });
    }
  }
  return c;
}

/**
 * Write a folder of the run through `fill(tmpDir)` and put it in place as `commits/<name>`: written under a temp
 * name, synced, renamed. It is not committed until commit.json names it. Returns its path relative to the run.
 */
export async function stageCommitFolder(runDir: string, name: string, fill: (dir: string) => Promise<void>): Promise<string> {
  const commits = join(runDir, COMMITS_DIR);
  await mkdir(commits, { recursive: true });
  const tmp = join(commits, name + tmpSuffix());
  await mkdir(tmp);
  try {
    await fill(tmp); // its files are written with writeFileAtomic (each synced); the folder's entries are synced here
    await syncDir(tmp);
    // An uncommitted folder of the same epoch left by a crash; a committed epoch is never written again.
    await rm(join(commits, name), { recursive: true, force: true });
    await rename(tmp, join(commits, name));
    await syncDir(commits);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return `${COMMITS_DIR}/${name}`;
}

/** Make `c` the run's commit: the atomic write of commit.json is the commit point. */
export async function writeCommit(runDir: string, c: Omit<RunCommit, 'format' | 'version'>): Promise<RunCommit> {
  const commit: RunCommit = { format: COMMIT_FORMAT, version: 1, ...c };
  await writeJsonAtomic(join(runDir, COMMIT_FILE), commit);
  await syncDir(runDir);
  return commit;
}

/**
 * Commit epoch `epoch`: stage its folder through `fill`, then flip commit.json to it (and, when `improved`, make
 * it the best), then tidy the run folder (tidyRun). `previous` is the commit it replaces.
 */
export async function commitEpoch(
  runDir: string, epoch: number, previous: RunCommit | null, improved: boolean, fill: (dir: string) => Promise<void>,
): Promise<RunCommit> {
  const name = commitFolderName(epoch);
  if (previous && previous.epoch >= epoch) throw new Error(`epoch ${epoch} is not after the committed epoch ${previous.epoch}`);
  const folder = await stageCommitFolder(runDir, name, fill);
  const commit = await writeCommit(runDir, { epoch, last: folder, best: improved ? folder : previous?.best ?? null });
  await tidyRun(runDir, commit);
  return commit;
}

/** Point `<runDir>/<name>` at `target` (a symlink swapped in by rename), or remove it when target is null. */
async function pointLink(runDir: string, name: string, target: string | null): Promise<void> {
  const link = join(runDir, name);
  const st = await lstat(link).catch(() => null);
  if (st?.isSymbolicLink() && target !== null && (await readlink(link)) === target) return;
  // A real folder here is a pre-commit run's checkpoint, already copied into commits/ (run-resume.ts).
  if (st && (!st.isSymbolicLink() || target === null)) await rm(link, { recursive: true, force: true });
  if (target === null) return;
  const tmp = link + tmpSuffix();
  await symlink(target, tmp, 'dir');
  await rename(tmp, link);
}

/**
 * Bring a run folder in line with its commit: remove what no commit names (uncommitted epoch folders, temp
 * files a crash left), point `last` and `best` at the committed folders and copy the committed state.json and
 * metrics.jsonl to the top. Returns what it removed. Call it only while holding the run's lock.
 */
export async function tidyRun(runDir: string, commit: RunCommit | null): Promise<string[]> {
  const removed: string[] = [];
  const keep = new Set([commit?.last, commit?.best].filter((f): f is string => !!f).map((f) => f.slice(COMMITS_DIR.length + 1)));
  for (const e of await readdir(join(runDir, COMMITS_DIR)).catch(() => [] as string[])) {
    if (keep.has(e)) continue;
    await rm(join(runDir, COMMITS_DIR, e), { recursive: true, force: true });
    removed.push(`${COMMITS_DIR}/${e}`);
  }
  for (const e of await readdir(runDir)) {
    // The trainer's own files always; an eval.json temp file only when its writer is gone (an eval may be running
    // beside this run and writing its own).
    const evalTemp = /^eval\.json\.tmp-(\d+)-[0-9a-f]+$/.exec(e);
    if (evalTemp && holderState({ pid: Number(evalTemp[1]), hostname: hostname(), started: '' }) !== 'dead') continue;
    if (!evalTemp && !/^(commit\.json|config\.json|state\.json|metrics\.jsonl|last|best)\.tmp-\d+-[0-9a-f]+$/.test(e)) continue;
    await rm(join(runDir, e), { recursive: true, force: true });
    removed.push(e);
  }
  if (!commit) return removed;
  await pointLink(runDir, 'last', commit.last);
  await pointLink(runDir, 'best', commit.best);
  for (const f of ['state.json', 'metrics.jsonl']) {
    const from = join(runDir, commit.last, f);
    if ((await lstat(from).catch(() => null))?.isFile()) await writeFileAtomic(join(runDir, f), await readFile(from));
  }
  return removed;
}

/** Copy `files` that exist in `from` into `to` (a commit folder being filled), each synced like every file of a commit. */
export async function copyInto(from: string, to: string, files: readonly string[]): Promise<void> {
  for (const f of files) {
    if (!(await lstat(join(from, f)).catch(() => null))?.isFile()) continue;
    await copyFile(join(from, f), join(to, f));
    const fh = await open(join(to, f), 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
  }
}
