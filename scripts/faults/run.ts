/**
 * The fault-injection suite (`make test-faults`): kill -9 at seeded points, racing runs, a full disk, damaged
 * corpora, hostile input and peak memory at three sizes, each against the real command line. One line per case:
 * the case, what was injected, and `held` / `FAILED` / `skipped`; exit status 1 when any case failed.
 *
 *   npx tsx scripts/faults/run.ts [--seed N] [--keep] [--list] [case-or-prefix ...]
 *
 * A filter runs the cases whose id starts with it (`kill/train`, `damage/`, `kill/generate#03`). The seed (default
 * 12, or $CFGEN_FAULTS_SEED) decides every kill point and choice, so a failing case reruns with the same
 * injections (their outcome still depends on timing). The 100k-image memory point runs when $CFGEN_FAULTS_FULL=1,
 * which `make test-faults` sets unless it is given as 0. See docs/guarantees.md.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { secs } from './lib.ts';
import type { Case, Ctx, Outcome } from './suite.ts';
import { killCases } from './cases/kill.ts';
import { raceCases } from './cases/race.ts';
import { enospcCases } from './cases/enospc.ts';
import { damageCases } from './cases/damage.ts';
import { hostileCases } from './cases/hostile.ts';
import { memoryCases } from './cases/memory.ts';

const ALL: Case[] = [...killCases, ...raceCases, ...enospcCases, ...damageCases, ...hostileCases, ...memoryCases];

function parseArgs(argv: string[]) {
  const o = { seed: Number(process.env.CFGEN_FAULTS_SEED ?? 12), keep: false, list: false, filters: [] as string[] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--seed') o.seed = Number(argv[++i]);
    else if (a === '--keep') o.keep = true;
    else if (a === '--list') o.list = true;
    else if (a === '--help' || a === '-h') { process.stdout.write(USAGE); process.exit(0); }
    else if (a.startsWith('-')) { process.stderr.write(`error: unknown option ${a} (try --help)\n`); process.exit(2); }
    else o.filters.push(a);
  }
  if (!Number.isInteger(o.seed)) { process.stderr.write('error: --seed takes an integer\n'); process.exit(2); }
  return o;
}
const USAGE = `usage: npx tsx scripts/faults/run.ts [--seed N] [--keep] [--list] [case-or-prefix ...]
  --seed N   seed of every kill point and choice (default 12, or $CFGEN_FAULTS_SEED)
  --keep     keep the temp folder (its path is printed)
  --list     list the cases and exit
A filter runs the cases whose id starts with it. CFGEN_FAULTS_FULL=1 adds the 100k-image memory point.
`;

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const full = process.env.CFGEN_FAULTS_FULL === '1';
  const cases = ALL.filter((c) => (o.filters.length ? o.filters.some((f) => c.id.startsWith(f)) : true));
  if (o.list) {
    for (const c of ALL) process.stdout.write(`${c.id}\n`);
    return;
  }
  if (!cases.length) { process.stderr.write(`error: no case matches ${o.filters.join(' ')} (see --list)\n`); process.exit(2); }
  const tmp = await mkdtemp(join(tmpdir(), 'cfgen-faults-'));
  const ctx: Ctx = { tmp, seed: o.seed, full };
  const t0 = Date.now();
  const estimate = cases.reduce((s, c) => s + c.cost, 0) + (full && cases.some((c) => c.id.startsWith('rss/')) ? 300 : 0);
  process.stdout.write(`fault suite: ${cases.length} cases, seed ${o.seed}, ${cpus().length} cores on ${hostname()}, about ${Math.ceil(estimate / 60)} min idle, temp ${tmp}\n`);
  const width = Math.max(...cases.map((c) => c.id.length));
  const counts = { held: 0, FAILED: 0, skipped: 0 };
  const figures: string[] = [];
  for (const c of cases) {
    const t = Date.now();
    let out: Outcome;
    try {
      out = await c.run(ctx);
    } catch (e) {
      out = { status: 'FAILED', injected: '(the case itself failed)', detail: [String((e as Error)?.stack ?? e)] };
    }
    counts[out.status]++;
    process.stdout.write(`${c.id.padEnd(width)}  ${out.injected}  ${out.status}  (${secs(Date.now() - t)})\n`);
    for (const l of out.detail ?? []) process.stdout.write(`    ${l.replace(/\n/g, '\n    ')}\n`);
    for (const [k, v] of Object.entries(out.figures ?? {})) figures.push(`  ${k}: ${v}`);
  }
  if (figures.length) process.stdout.write(`peak RSS (VmHWM of the command's node process, the largest of them):\n${figures.join('\n')}\n`);
  process.stdout.write(`wall time ${secs(Date.now() - t0)} (${new Date().toISOString().slice(0, 10)})\n`);
  if (o.keep) process.stdout.write(`kept ${tmp}\n`);
  else await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  // the plain closing line CI reads
  process.stdout.write(`faults: ${counts.held} passed, ${counts.FAILED} failed, ${counts.skipped} skipped\n`);
  process.exit(counts.FAILED ? 1 : 0);
}

main().catch((e) => { process.stderr.write(`${(e as Error)?.stack ?? e}\n`); process.exit(1); });
