/**
 * Pretraining → fine-tuning, offline (`make pretrain-demo`; docs/pretrained.md, docs/benchmarks.md):
 *
 * 1. builds a larger synth-in9 (9 classes, 5,400 train images, backgrounds not tied to the class) in its own roots
 *    under runs/pretrain-demo/, and pretrains our `small` ResNetV2 on it with `cfgen train --method orig`;
 * 2. exports the pretrained checkpoint with `cfgen export-weights` as a BiT .npz and as a timm .safetensors;
 * 3. fine-tunes on synth-waterbirds with the CPU preset from scratch and with `--init <.npz>` (fresh 2-class head), for
 *    `orig` and the recommended `cf-tile+f-random+sal@10`, over 3 seeds; and once (first seed) with
 *    `--init <.safetensors>`, which must reproduce the .npz run of that seed exactly (same weights, same config);
 * 4. prints the table (Original / Flip / worst-group, mean ± std) and writes it into docs/benchmarks.md.
 *
 * Runs are `cfgen train` child processes, `--parallel` at a time (wasm runs one thread, so 2 fill a 2-core machine);
 * the scratch runs start beside the pretraining. Rerunning skips finished runs and resumes unfinished ones.
 *
 * usage: npx tsx bench/pretrain-demo.ts [--seeds 0,1,2] [--parallel 2] [--methods orig,cf-tile+f-random+sal@10]
 *          [--pretrain-train 5400] [--pretrain-epochs 10] [--pretrain-correlation 0.11] [--no-docs] [--fresh]
 */
import { runChild } from './child.ts';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { cpus, getPriority, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic, writeJsonAtomic } from '../manifests/io.ts';
import { methodSlug, parseMethod } from '../trainer/method.ts';
import { compareRuns, demoMarkdown, readRunResult, writeDocsSection, type DemoRow } from './pretrain-demo-report.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
};
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

const SEEDS = arg('seeds', '0,1,2').split(',').map(Number);
const PARALLEL = Math.max(1, Number(arg('parallel', '2')));
const METHOD_SPECS = arg('methods', 'orig,cf-tile+f-random+sal@10').split(',');
const METHODS = METHOD_SPECS.map((m) => parseMethod(m));
// the table shows METHOD as the user writes it (`cf-tile+f-random+sal@10`), not the canonical `orig+…`
const label = (m: ReturnType<typeof parseMethod>): string => METHOD_SPECS[METHODS.indexOf(m)];
const PRE_TRAIN = arg('pretrain-train', '5400');
const PRE_EPOCHS = arg('pretrain-epochs', '10');
// ≈ 1/9: each of the 9 classes sits on every background family about equally often, so pretraining learns objects,
// as ImageNet pretraining does, rather than synth-in9's own background shortcut
const PRE_CORRELATION = arg('pretrain-correlation', '0.11');
const RUNS_ROOT = join(ROOT, 'runs');
const OUT = join(RUNS_ROOT, 'pretrain-demo');
const IN9_DATA = join(OUT, 'data');
const IN9_CORPORA = join(OUT, 'corpora');
const PRETRAIN_RUN = 'pretrain-demo-in9-small';
const WEIGHTS = { npz: join(OUT, 'weights', 'in9-small.npz'), safetensors: join(OUT, 'weights', 'in9-small.safetensors') };
const WB = 'synth-waterbirds';
const COMMON = ['--backend', 'wasm', '--concurrency', '4', '--aupr-images', '0', '--eg-samples', '0', '--runs-root', RUNS_ROOT];

function cfgen(args: string[], logFile?: string): Promise<number> {
  return runChild('npx', ['--no-install', 'tsx', 'cfgen.ts', ...args], ROOT, logFile);
}

/** A run is finished when its state says so and it has been evaluated; such runs are skipped on a rerun. */
async function finished(runId: string): Promise<boolean> {
  try {
    const st = JSON.parse(await readFile(join(RUNS_ROOT, runId, 'state.json'), 'utf8')) as { finished?: boolean };
    return st.finished === true && existsSync(join(RUNS_ROOT, runId, 'eval.json'));
  } catch {
    return false;
  }
}

/** The invocations results.json recorded (a file from before it kept a list holds one, as wallMin + loads). */
async function previousInvocations(): Promise<{ date: string; wallMin: number; loads: number[] }[]> {
  try {
    const r = JSON.parse(await readFile(join(OUT, 'results.json'), 'utf8')) as { invocations?: { date: string; wallMin: number; loads: number[] }[]; wallMin?: number; loads?: number[] };
    if (Array.isArray(r.invocations)) return r.invocations;
    return typeof r.wallMin === 'number' ? [{ date: 'earlier', wallMin: r.wallMin, loads: r.loads ?? [] }] : [];
  } catch {
    return [];
  }
}

interface Job { runId: string; args: string[]; init: 'scratch' | 'npz' | 'safetensors' | 'pretrain'; method: string; seed: number; cost: number }

async function main(): Promise<void> {
  const t0 = Date.now();
  const loads: number[] = [loadavg()[0]];
  const sampler = setInterval(() => loads.push(loadavg()[0]), 30_000);
  const log = (l: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${l}`);
  await mkdir(join(OUT, 'logs'), { recursive: true });
  if (flag('fresh')) await rm(join(OUT, 'weights'), { recursive: true, force: true });

  // The datasets and corpora first, one process at a time: parallel runs would race to build them.
  if (!existsSync(join(ROOT, 'corpora', WB, 'source'))) {
    log(`building ${WB}`);
    if (await cfgen(['dataset', WB]) !== 0) throw new Error(`cfgen dataset ${WB} failed`);
  }
  const folders = [...new Set(METHODS.flatMap((m) => m.corpora))].filter((f) => !existsSync(join(ROOT, 'corpora', WB, f, 'manifest')));
  if (folders.length) {
    log(`generating ${folders.join(', ')}`);
    if (await cfgen(['generate', '--dataset', WB, '--methods', folders.join(',')]) !== 0) throw new Error('cfgen generate failed');
  }
  log(`synth-in9 for pretraining: ${PRE_TRAIN} train images, correlation ${PRE_CORRELATION} (reused when built with these knobs)`);
  if (await cfgen(['dataset', 'synth-in9', '--train', PRE_TRAIN, '--correlation', PRE_CORRELATION, '--seed', '0', '--data-root', IN9_DATA, '--corpora-root', IN9_CORPORA], join(OUT, 'logs', 'dataset-synth-in9.log')) !== 0) {
    throw new Error(`cfgen dataset synth-in9 failed (see ${join(OUT, 'logs', 'dataset-synth-in9.log')})`);
  }

  const fresh = flag('fresh') ? ['--fresh'] : [];
  const pretrain: Job = {
    runId: PRETRAIN_RUN, init: 'pretrain', method: 'orig', seed: 0, cost: 100,
    args: ['train', '--dataset', 'synth-in9', '--method', 'orig', '--seed', '0', '--epochs', PRE_EPOCHS, '--model', 'small', '--corpora-root', IN9_CORPORA, '--run-id', PRETRAIN_RUN, ...COMMON, ...fresh],
  };
  const tune = (init: Job['init'], m: ReturnType<typeof parseMethod>, seed: number): Job => {
    const runId = `pretrain-demo-${init === 'safetensors' ? 'st' : init}-${methodSlug(m)}-s${seed}`;
    const cost = 1 + m.corpora.length + (m.sal ? 2 : 0);
    return {
      runId, init, method: m.canonical, seed, cost,
      args: ['train', '--dataset', WB, '--method', m.canonical, '--seed', String(seed), '--run-id', runId, ...COMMON, ...fresh,
        ...(init === 'scratch' ? [] : ['--init', WEIGHTS[init as 'npz' | 'safetensors']])],
    };
  };
  const scratch: Job[] = [];
  const pretrained: Job[] = [];
  for (const m of METHODS) {
    for (const seed of SEEDS) { scratch.push(tune('scratch', m, seed)); pretrained.push(tune('npz', m, seed)); }
    pretrained.push(tune('safetensors', m, SEEDS[0]));
  }
  // longest first, so the two slots finish together
  const byCost = (a: Job, b: Job): number => b.cost - a.cost || a.seed - b.seed;
  scratch.sort(byCost);
  pretrained.sort(byCost);

  const minutes = new Map<string, number>();
  const failed: string[] = [];
  const runJob = async (j: Job): Promise<void> => {
    if (!flag('fresh') && await finished(j.runId)) { log(`skip  ${j.runId} (finished)`); return; }
    const r0 = Date.now();
    log(`start ${j.runId}`);
    const code = await cfgen(j.args, join(OUT, 'logs', `${j.runId}.log`));
    minutes.set(j.runId, (Date.now() - r0) / 60000);
    if (code !== 0) failed.push(j.runId);
    log(`${code === 0 ? 'done ' : 'FAILED'} ${j.runId} (${minutes.get(j.runId)!.toFixed(1)} min)`);
  };

  // Slot 1 pretrains and exports, then takes fine-tuning jobs; the other slots run scratch jobs meanwhile.
  let pretrainDone = false;
  const queue = async (): Promise<void> => {
    for (;;) {
      const j = scratch.shift() ?? (pretrainDone ? pretrained.shift() : undefined);
      if (!j) return;
      await runJob(j);
    }
  };
  const pretrainThenQueue = async (): Promise<void> => {
    await runJob(pretrain);
    if (!failed.includes(PRETRAIN_RUN)) {
      for (const [format, file] of Object.entries(WEIGHTS)) {
        if (existsSync(file)) continue;
        if (await cfgen(['export-weights', '--run', PRETRAIN_RUN, '--runs-root', RUNS_ROOT, '--out', file], join(OUT, 'logs', `export-${format}.log`)) !== 0) {
          throw new Error(`cfgen export-weights --format ${format} failed (see ${join(OUT, 'logs', `export-${format}.log`)})`);
        }
        log(`exported ${file}`);
      }
      pretrainDone = true;
    } else {
      log('pretraining FAILED: the pretrained rows are skipped');
      pretrained.length = 0;
    }
    await queue();
  };
  await Promise.all([pretrainThenQueue(), ...Array.from({ length: PARALLEL - 1 }, async () => {
    await queue();
    // a slot that ran out of scratch jobs before the pretraining finished waits for the fine-tuning jobs
    while (!pretrainDone && pretrained.length) await new Promise((r) => setTimeout(r, 5000));
    await queue();
  })]);
  clearInterval(sampler);
  loads.push(loadavg()[0]);

  const rows: DemoRow[] = [];
  for (const m of METHODS) {
    for (const init of ['scratch', 'npz'] as const) {
      const ids = SEEDS.map((s) => `pretrain-demo-${init}-${methodSlug(m)}-s${s}`);
      rows.push({ method: label(m), init, runs: (await Promise.all(ids.map((id) => readRunResult(join(RUNS_ROOT, id))))).filter((r) => r !== null) });
    }
  }
  const checks = await Promise.all(METHODS.map(async (m) => compareRuns(
    join(RUNS_ROOT, `pretrain-demo-npz-${methodSlug(m)}-s${SEEDS[0]}`), join(RUNS_ROOT, `pretrain-demo-st-${methodSlug(m)}-s${SEEDS[0]}`), label(m),
  )));
  // An interrupted demo is finished by rerunning it: the wall time and load are those of every invocation since the
  // last --fresh (results.json keeps them), not only of the last one, which may have skipped everything.
  const invocations = [...(flag('fresh') ? [] : await previousInvocations()), { date: new Date(t0).toISOString(), wallMin: (Date.now() - t0) / 60000, loads }];
  const wallMin = invocations.reduce((a, i) => a + i.wallMin, 0);
  const machine = `${cpus().length}-core ${cpus()[0]?.model?.trim() ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, wasm backend`;
  const pre = await readRunResult(join(RUNS_ROOT, PRETRAIN_RUN));
  const md = demoMarkdown({
    date: new Date().toISOString().slice(0, 10), machine, loads: invocations.flatMap((i) => i.loads), wallMin, invocations: invocations.length, seeds: SEEDS, rows, checks, pretrain: pre,
    pretrainSetup: { train: Number(PRE_TRAIN), epochs: Number(PRE_EPOCHS), correlation: Number(PRE_CORRELATION) }, failed,
    command: `${getPriority() > 0 ? `nice -n ${getPriority()} ` : ''}${process.argv.length > 2 ? `npx tsx bench/pretrain-demo.ts ${process.argv.slice(2).join(' ')}` : 'make pretrain-demo'}`,
  });
  console.log(`\n${md}`);
  await writeFileAtomic(join(OUT, 'results.md'), md);
  await writeJsonAtomic(join(OUT, 'results.json'), { seeds: SEEDS, rows, checks, pretrain: pre, invocations, wallMin, failed, minutes: Object.fromEntries(minutes) });
  if (!flag('no-docs') && !failed.length) {
    await writeDocsSection(join(ROOT, 'docs', 'benchmarks.md'), md);
    log('wrote the table into docs/benchmarks.md');
  }
  log(`results: ${join(OUT, 'results.md')}`);
  if (failed.length || checks.some((c) => !c.identical)) process.exit(1);
}

main().catch((e) => { console.error(e); process.exit(1); });
