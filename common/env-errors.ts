import { dirname } from 'node:path';
import { UserError } from '../manifests/errors.ts';

/**
 * Errors that come from the machine rather than from the user's input or from our code: a full disk, a folder we
 * may not write, too many open files, a read-only file system, a file of ours that is truncated or corrupt, a
 * folder another process holds. Each becomes one paragraph naming the path and the fix, and its own exit status,
 * so a script can tell "the disk is full" from "the error rate was exceeded" (docs/generate.md, exit status).
 */

/** The exit statuses every command uses. */
export const EXIT_CODES = {
  /** the command did what was asked */
  ok: 0,
  /** it ran, but the result fails a check the user asked for: --strict, --max-error-rate, verify found damage */
  failed: 1,
  /** usage or data error (UserError): bad flag, unknown method, config clash without --force, missing dataset */
  usage: 2,
  /** environment error (EnvironmentError): disk full, permission, open-file limit, read-only, corrupt file, lock held */
  environment: 3,
} as const;

/**
 * A UserError caused by the environment; the CLI prints it like any UserError but exits with
 * EXIT_CODES.environment. `code` is the errno code behind it (ENOSPC, ...) when there is one.
 */
export class EnvironmentError extends UserError {
  readonly code?: string;
  readonly exitCode: number = EXIT_CODES.environment;
  constructor(message: string, opts: { file?: string; fix?: string; code?: string; cause?: unknown } = {}) {
    super(message, { file: opts.file, fix: opts.fix });
    this.name = 'EnvironmentError';
    this.code = opts.code;
    if (opts.cause !== undefined) (this as { cause?: unknown }).cause = opts.cause;
  }
}

/** The errno-style fields Node puts on fs errors (and that our worker threads copy across). */
type Errno = Error & { code?: unknown; path?: unknown; dest?: unknown; syscall?: unknown };

/** Walk `err` and its `cause` chain for the first error with an errno code we translate. */
function findErrno(err: unknown): Errno | null {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as Errno).code;
    if (typeof code === 'string' && code in FIXES) return e as Errno;
  }
  return null;
}

/** What happened and the fix, per errno code; `where` is the path (or "a file") and `dir` its folder. */
const FIXES: Record<string, (where: string, dir: string, op: string) => { what: string; fix: string }> = {
  ENOSPC: (where, dir, op) => ({
    what: `no space left on the device (${op} ${where})`,
    fix: `free space on the disk that holds ${dir} (see \`df -h ${dir}\`), or point the root at a disk with room (--corpora-root / --data-root, CFGEN_CORPORA_ROOT / CFGEN_DATA_ROOT); then rerun the same command: it resumes where it stopped (dataset rebuilds, generate and train resume) and removes what the failed run left`,
  }),
  EDQUOT: (where, dir, op) => ({
    what: `disk quota exceeded (${op} ${where})`,
    fix: `free space in your quota on ${dir}, or point the root at another disk (--corpora-root / --data-root); then rerun the same command, which resumes`,
  }),
  EACCES: (where, dir, op) => ({
    what: `permission denied (${op} ${where})`,
    fix: `check the owner and mode of ${dir} (\`ls -ld ${dir}\`) and that you may write there, or choose another root with --corpora-root / --data-root`,
  }),
  EPERM: (where, dir, op) => ({
    what: `operation not permitted (${op} ${where})`,
    fix: `check the owner, mode and attributes of ${dir} (\`ls -ld ${dir}\`; immutable or root-owned files cannot be replaced), or choose another root with --corpora-root / --data-root`,
  }),
  EMFILE: (where, _dir, op) => ({
    what: `too many open files in this process (${op} ${where})`,
    fix: 'raise the limit (`ulimit -n 4096` in the shell that runs the command) or use fewer --workers, then rerun the same command',
  }),
  ENFILE: (where, _dir, op) => ({
    what: `too many open files on this machine (${op} ${where})`,
    fix: 'close other programs holding many files or raise the system limit (fs.file-max), then rerun the same command',
  }),
  EROFS: (where, dir, op) => ({
    what: `read-only file system (${op} ${where})`,
    fix: `write somewhere else (--corpora-root / --data-root, CFGEN_CORPORA_ROOT / CFGEN_DATA_ROOT) or remount ${dir} read-write`,
  }),
};

const OPS: Record<string, string> = {
  open: 'opening', write: 'writing', read: 'reading', mkdir: 'creating the folder', rename: 'renaming', unlink: 'removing',
  rmdir: 'removing the folder', scandir: 'listing', copyfile: 'copying', fsync: 'flushing', link: 'linking',
};

/**
 * The EnvironmentError an error stands for (its own, or an errno error in its `cause` chain translated into one
 * paragraph with the path and the fix), or null when it is not an environment error.
 */
export function environmentError(err: unknown): EnvironmentError | null {
  if (err instanceof EnvironmentError) return err;
  // manifests/ cannot import this file: a UserError it marks with code ECORRUPT (a damaged file) counts as one
  if (err instanceof UserError && (err as { code?: unknown }).code === 'ECORRUPT') {
    const env = new EnvironmentError('', { code: 'ECORRUPT', cause: err });
    env.message = err.message;
    return env;
  }
  const e = findErrno(err);
  if (!e) return null;
  const code = e.code as string;
  const path = typeof e.path === 'string' ? e.path : null;
  // writeFileAtomic writes `<file>.tmp-<pid>-<hex>` first: name the file the user will recognise
  const shown = path ? path.replace(/\.tmp-\d+-[0-9a-f]+$/, '') : null;
  const op = typeof e.syscall === 'string' ? OPS[e.syscall] ?? e.syscall : 'accessing';
  const { what, fix } = FIXES[code](shown ?? 'a file', shown ? dirname(shown) : 'the output folder', op);
  return new EnvironmentError(what, { fix, code, cause: err });
}

/**
 * A file we (or the dataset) wrote that cannot be read back: truncated by a crash or a full disk, or damaged.
 * `fix` says how to get a good copy (rebuild it, restore it).
 */
export function corruptFileError(file: string, why: string, fix: string): EnvironmentError {
  return new EnvironmentError(`the file is truncated or corrupt (${why.split('\n')[0]})`, { file, fix, code: 'ECORRUPT' });
}

/** Where the CLI's last-resort handler writes and how it exits (injectable for tests). */
export interface ErrorSink {
  write(text: string): void;
  exit(code: number): never;
}

const processSink: ErrorSink = {
  write: (t) => { process.stderr.write(t); },
  exit: (c) => process.exit(c),
};

/**
 * The CLI's last-resort handler: an environment error (or an errno error it can translate) is printed as one
 * paragraph and exits 3; a UserError exits 2 without a stack; anything else is a bug and keeps its stack.
 */
export function exitOnError(err: unknown, sink: ErrorSink = processSink): never {
  const env = environmentError(err);
  if (env) {
    sink.write(`error: ${env.message}\n`);
    return sink.exit(env.exitCode);
  }
  // the same output and status as manifests/errors.ts's exitOnUserError
  if (err instanceof UserError) {
    sink.write(`error: ${err.message}\n`);
    return sink.exit(EXIT_CODES.usage);
  }
  throw err;
}
