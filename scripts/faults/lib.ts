/**
 * What every fault case needs: the CLI as a child process group it can SIGKILL at a chosen point, tree hashes to
 * compare results byte for byte, seeded choices, and a small list of checks that turns into `held` or `FAILED`.
 * Cases go through the command line (`node_modules/.bin/tsx cfgen.ts …`) and `cfgen verify`, not through the
 * code's internals, so they keep testing what a user runs while the code behind it changes.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const HWM_PRELOAD = join(ROOT, 'scripts', 'faults', 'hwm.cjs');

// ---- seeded choices ----

/** A seeded stream of uniform numbers in [0, 1) (mulberry32 over an FNV-1a hash of the key). */
export function rng(...key: (string | number)[]): () => number {
  let h = 0x811c9dc5;
  for (const ch of key.join('\u0000')) h = Math.imul(h ^ ch.codePointAt(0)!, 0x01000193) >>> 0;
  let a = h;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded integer in [lo, hi]. */
export const intIn = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

// ---- the roots a command works in ----

export interface Roots { data: string; corpora: string; runs: string }

export const rootsIn = (dir: string): Roots => ({ data: join(dir, 'data'), corpora: join(dir, 'corpora'), runs: join(dir, 'runs') });

// ---- running the CLI ----

/** When to SIGKILL the command's process group. */
export type KillAt =
  /** once `dir` holds at least `entries` files and folders (counted recursively, polled every few ms) */
  | { entries: number; dir: string }
  /** `delayMs` after the `line`-th output line (0-based; -1 = the start) */
  | { line: number; delayMs: number }
  /** `ms` after the start */
  | { ms: number };

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, interleaved as they came */
  out: string;
  /** output lines with the time (ms from the start) each arrived */
  lines: { ms: number; text: string }[];
  ms: number;
  /** the kill fired (false: the command had already exited, or no kill was asked for) */
  killed: boolean;
  /** when it fired, ms from the start */
  killedAtMs?: number;
  /** the largest VmHWM (kB) of the command's node processes, when measured */
  peakKb?: number;
  /** what the peak was read from: one line per process, "<kB> <argv>" */
  peakDetail?: string[];
}

export interface RunOptions {
  roots?: Roots;
  env?: Record<string, string>;
  kill?: KillAt;
  /** measure the peak RSS of the command's node processes */
  measure?: boolean;
  /** kill the command (and fail) after this long; default 10 minutes */
  timeoutMs?: number;
  /** the command line instead of cfgen: [program, ...args] */
  argv?: string[];
  cwd?: string;
}

function entriesIn(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true }).length;
  } catch {
    return 0;
  }
}

/**
 * Runs `tsx cfgen.ts <args>` in its own process group (tsx starts the real node process as a child, so only a
 * group kill reaches it) and resolves once every process of the group has closed its output.
 */
export async function cfgen(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...opts.env };
  if (opts.roots) Object.assign(env, { CFGEN_DATA_ROOT: opts.roots.data, CFGEN_CORPORA_ROOT: opts.roots.corpora, CFGEN_RUNS_ROOT: opts.roots.runs });
  let hwmDir: string | null = null;
  if (opts.measure) {
    hwmDir = await mkdtemp(join(tmpdir(), 'cfgen-faults-hwm-'));
    env.CFGEN_FAULTS_HWM_DIR = hwmDir;
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ? `${env.NODE_OPTIONS} ` : ''}--require "${HWM_PRELOAD}"`;
  }
  const [program, ...rest] = opts.argv ?? [TSX, 'cfgen.ts', ...args];
  const t0 = Date.now();
  const child = spawn(program, rest, { cwd: opts.cwd ?? ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  const killGroup = () => { try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ } };
  const result: RunResult = { code: null, signal: null, out: '', lines: [], ms: 0, killed: false };
  let exited = false;
  let partial = '';
  let lineTimer: NodeJS.Timeout | null = null;
  const fire = () => {
    if (!exited && !result.killed) { result.killed = true; result.killedAtMs = Date.now() - t0; killGroup(); }
  };
  const onData = (d: Buffer) => {
    const s = d.toString('utf8');
    result.out += s;
    partial += s;
    const parts = partial.split(/\r?\n|\r/);
    partial = parts.pop()!;
    for (const text of parts) {
      result.lines.push({ ms: Date.now() - t0, text });
      const k = opts.kill;
      if (k && 'line' in k && result.lines.length - 1 === k.line && !lineTimer) lineTimer = setTimeout(fire, k.delayMs);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timers: NodeJS.Timeout[] = [];
  const k = opts.kill;
  if (k && 'ms' in k) timers.push(setTimeout(fire, k.ms));
  if (k && 'line' in k && k.line < 0) timers.push(setTimeout(fire, k.delayMs));
  let poll: NodeJS.Timeout | null = null;
  if (k && 'entries' in k) {
    poll = setInterval(() => { if (entriesIn(k.dir) >= k.entries) { clearInterval(poll!); fire(); } }, 4);
  }
  const timeout = setTimeout(() => { result.out += `\n[fault suite: killed after ${opts.timeoutMs ?? 600_000} ms]\n`; killGroup(); }, opts.timeoutMs ?? 600_000);
  await new Promise<void>((res) => {
    child.on('exit', (code, signal) => { exited = true; result.code = code; result.signal = signal; });
    child.on('close', (code, signal) => { exited = true; result.code ??= code; result.signal ??= signal; res(); });
  });
  // nothing of the group may outlive the command (a grandchild that kept no output open would), and a rerun must
  // find it gone: wait until init has reaped it too (a zombie's pid still answers kill(pid, 0), so a lock it held
  // would look alive; this machine's init reaps orphans only every second or two)
  killGroup();
  if (result.killed || result.signal) await groupGone(pid);
  result.ms = Date.now() - t0;
  if (partial) result.lines.push({ ms: result.ms, text: partial });
  for (const t of timers) clearTimeout(t);
  if (lineTimer) clearTimeout(lineTimer);
  if (poll) clearInterval(poll);
  clearTimeout(timeout);
  if (hwmDir) {
    const files = await readdir(hwmDir);
    const rows = await Promise.all(files.map((f) => readFile(join(hwmDir!, f), 'utf8')));
    result.peakDetail = rows.map((r) => r.trim());
    const kbs = rows.map((r) => Number(r.split(' ')[0])).filter(Number.isFinite);
    if (kbs.length) result.peakKb = Math.max(...kbs);
    await rm(hwmDir, { recursive: true, force: true });
  }
  return result;
}

/** The processes (zombies included) whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function groupGone(pgid: number, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (groupMembers(pgid).length && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 50));
}

/** Runs any program (not cfgen) the same way. */
export const run = (argv: string[], opts: Omit<RunOptions, 'argv'> = {}) => cfgen([], { ...opts, argv });

/** The last `n` lines of a command's output, for a failure's detail. */
export const tail = (r: RunResult, n = 8) => r.out.trimEnd().split('\n').slice(-n).map((l) => `    | ${l}`);

// ---- trees ----

/** Every file (and symbolic link) under `dir`, by path relative to it: SHA-256 of the bytes (or `link:<target>`). */
export async function treeHashes(dir: string, opts: { skip?: (rel: string) => boolean; bytes?: (rel: string, b: Buffer) => Buffer } = {}): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function walk(d: string): Promise<void> {
    let names: string[];
    try { names = await readdir(d); } catch { return; }
    for (const name of names.sort()) {
      const abs = join(d, name);
      const rel = relative(dir, abs).split(sep).join('/');
      if (opts.skip?.(rel)) continue;
      const st = await lstat(abs);
      if (st.isSymbolicLink()) out.set(rel, `link:${await readlink(abs)}`);
      else if (st.isDirectory()) await walk(abs);
      else {
        const raw = await readFile(abs);
        const b = opts.bytes ? opts.bytes(rel, raw) : raw;
        out.set(rel, createHash('sha256').update(b).digest('hex'));
      }
    }
  }
  await walk(dir);
  return out;
}

/** The differences between two trees, as readable lines (at most `max`). */
export function treeDiff(got: Map<string, string>, want: Map<string, string>, max = 6): string[] {
  const d: string[] = [];
  for (const [f, h] of want) if (!got.has(f)) d.push(`missing  ${f}`); else if (got.get(f) !== h) d.push(`differs  ${f}`);
  for (const f of got.keys()) if (!want.has(f)) d.push(`extra    ${f}`);
  return d.length > max ? [...d.slice(0, max), `… ${d.length - max} more`] : d;
}

/** A tree's own digest (one hash over its paths and hashes). */
export function treeDigest(t: Map<string, string>): string {
  const h = createHash('sha256');
  for (const [f, v] of [...t].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(`${f}\u0000${v}\n`);
  return h.digest('hex');
}

/** Files under `dir` whose relative path matches `re`, sorted. */
export async function findFiles(dir: string, re: RegExp): Promise<string[]> {
  const all = (await readdir(dir, { recursive: true }).catch(() => [] as string[])).map((f) => f.split(sep).join('/'));
  const files: string[] = [];
  for (const f of all.filter((f) => re.test(f)).sort()) if ((await lstat(join(dir, f))).isFile()) files.push(join(dir, f));
  return files;
}

/** Makes `dir` an exact copy of `snapshot` (or empty). */
export async function resetTo(dir: string, snapshot: string | null): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  if (snapshot) await cp(snapshot, dir, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
  else await mkdir(dir, { recursive: true });
}

export const exists = (p: string) => lstat(p).then(() => true, () => false);

// ---- checks ----

/** writeFileAtomic's (and the mask cache's) temp names: `<file>.tmp-<pid>-<hex>` */
const TEMP_FILE = /\.tmp-\d+-[0-9a-f]+$/;

/** The checks of one case; any failure makes it FAILED, with every failed check in the detail. */
export class Checks {
  readonly failures: string[] = [];
  ok(cond: unknown, what: string, detail: string[] = []): boolean {
    if (!cond) this.failures.push(what, ...detail);
    return Boolean(cond);
  }
  exit(r: RunResult, want: number | number[], what: string): boolean {
    const codes = Array.isArray(want) ? want : [want];
    return this.ok(r.code !== null && codes.includes(r.code), `${what}: exit ${r.code ?? r.signal}, expected ${codes.join(' or ')}`, tail(r));
  }
  /** no stack trace: an error the user sees is one paragraph */
  noStack(r: RunResult, what: string): boolean {
    return this.ok(!/\n\s+at .+:\d+:\d+\)?\n/.test(r.out), `${what}: printed a stack trace`, tail(r, 14));
  }
  /** `got` equals `want` byte for byte; temp files (`*.tmp-*`) left behind are reported on their own */
  sameTree(got: Map<string, string>, want: Map<string, string>, what: string): boolean {
    const litter = [...got.keys()].filter((f) => TEMP_FILE.test(f) && !want.has(f));
    const d = treeDiff(new Map([...got].filter(([f]) => !litter.includes(f))), want);
    const clean = this.ok(litter.length === 0, `${what}: temp files a killed run left were not removed`, litter.slice(0, 4).map((l) => `    ${l}`));
    return this.ok(d.length === 0, `${what}: not byte-identical to the uninterrupted run`, d.map((l) => `    ${l}`)) && clean;
  }
}

export const mb = (kb: number | undefined) => (kb === undefined ? 'n/a' : `${(kb / 1024).toFixed(0)} MB`);
export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
