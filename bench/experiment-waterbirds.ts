/**
 * Acceptance experiment (`make experiment`): on synth-waterbirds, train `orig`, F(Random), CF(Tile) and
 * CF(Tile)+F(Random)+Sal with several seeds, evaluate each at its best-validation epoch and print
 * mean ± std of Original, Flip and worst-group test accuracy. The shortcut check: `orig` must lose at least
 * 15 points from Original to Flip, or the synthetic dataset's background shortcut is too weak to study.
 *
 * Runs are child processes of `cfgen train` (resumable: rerunning skips finished runs), `--parallel` at a time;
 * the wasm backend is single-threaded under Node, so 2 parallel runs use both cores of a 2-core machine.
 *
 * Each finished run is also scored on the dataset's stress-test corpus (`cfgen eval --stress --aupr-images 0`, built
 * first when missing; `--no-stress` skips it). The table is written through the report (report/build.ts):
 * reports/experiment-<dataset>/ holds results.md, results.csv and index.html, and the table is printed.
 *
 * usage: npx tsx bench/experiment-waterbirds.ts [--seeds 0,1,2] [--epochs N] [--parallel 2] [--size S]
 *          [--model small] [--methods orig,f-random,cf-tile,cf-tile+f-random+sal@10] [--dataset synth-waterbirds]
 *          [--runs-root runs] [--corpora-root corpora] [--fresh] [--extra "--lr 0.002"] [--no-stress]
 */
import { runChild } from './child.ts';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic, writeJsonAtomic } from '../manifests/io.ts';
import { meanStd, type MeanStd } from '../trainer/metrics.ts';
import { defaultRoot } from '../common/paths.ts';
import { buildReport } from '../report/build.ts';
import { methodSlug, parseMethod } from '../trainer/method.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

const DATASET = arg('dataset', 'synth-waterbirds');
const SEEDS = arg('seeds', '0,1,2').split(',').map(Number);
const EPOCHS = arg('epochs', ''); // '' = the dataset's preset
const PARALLEL = Math.max(1, Number(arg('parallel', '2')));
const SIZE = arg('size', '');
const MODEL = arg('model', '');
const METHODS = arg('methods', 'orig,f-random,cf-tile,cf-tile+f-random+sal@10').split(',');
const RUNS_ROOT = resolve(arg('runs-root', join(ROOT, 'runs')));
const CORPORA_ROOT = resolve(arg('corpora-root', join(ROOT, 'corpora')));
const EXTRA = arg('extra', '').split(/\s+/).filter(Boolean);
const GAP_REQUIRED = 0.15;

function run(cmd: string, args: string[], logFile?: string): Promise<number> {
  return runChild(cmd, args, ROOT, logFile);
}

interface Job { method: string; seed: number; runId: string }

async function main(): Promise<void> {
  const t0 = Date.now();
  const log = (l: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${l}`);
  const methods = METHODS.map((m) => parseMethod(m));
  // Build the dataset and the corpora once, before the parallel runs (they would race to generate them).
  const folders = [...new Set(methods.flatMap((m) => m.corpora))];
  const missing = folders.filter((f) => !existsSync(join(CORPORA_ROOT, DATASET, f, 'manifest')));
  if (!existsSync(join(CORPORA_ROOT, DATASET, 'source'))) {
    log(`building ${DATASET}`);
    if (await run('npx', ['tsx', 'cfgen.ts', 'dataset', DATASET]) !== 0) throw new Error(`cfgen dataset ${DATASET} failed`);
  }
  if (missing.length) {
    log(`generating ${missing.join(', ')}`);
    if (await run('npx', ['tsx', 'cfgen.ts', 'generate', '--dataset', DATASET, '--methods', missing.join(','), '--corpora-root', CORPORA_ROOT]) !== 0) throw new Error('cfgen generate failed');
  }

  const jobs: Job[] = [];
  for (const seed of SEEDS) for (const m of methods) jobs.push({ method: m.canonical, seed, runId: `exp-${DATASET}-${methodSlug(m)}-s${seed}` });
  // Longest runs first, so the parallel workers finish together.
  const cost = (spec: string): number => { const m = parseMethod(spec); return 1 + m.corpora.length + (m.sal ? 2 : 0) + (m.fgsm ? 1 : 0); };
  jobs.sort((a, b) => cost(b.method) - cost(a.method) || a.seed - b.seed);
  const outDir = join(RUNS_ROOT, `experiment-${DATASET}`);
  await mkdir(outDir, { recursive: true });
  log(`${jobs.length} runs (${METHODS.length} methods × ${SEEDS.length} seeds), ${PARALLEL} at a time, ${EPOCHS || 'preset'} epochs; logs in ${outDir}/`);
  let next = 0;
  const failed: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const j = jobs[next++];
      const args = ['tsx', 'cfgen.ts', 'train', '--method', j.method, '--dataset', DATASET, '--seed', String(j.seed), ...(EPOCHS ? ['--epochs', EPOCHS] : []),
        '--run-id', j.runId, '--runs-root', RUNS_ROOT, '--corpora-root', CORPORA_ROOT, '--backend', 'wasm', '--concurrency', '4',
        '--aupr-images', '100', '--eg-samples', '8', ...(SIZE ? ['--size', SIZE] : []), ...(MODEL ? ['--model', MODEL] : []),
        ...(flag('fresh') ? ['--fresh'] : []), ...EXTRA];
      const r0 = Date.now();
      log(`start ${j.runId}`);
      const code = await run('npx', args, join(outDir, `${j.runId}.log`));
      if (code !== 0) failed.push(j.runId);
      else if (!flag('no-stress')) {
        // the stress test is scored apart from training, so a finished (resumed) run gets it too
        const s = await run('npx', ['tsx', 'cfgen.ts', 'eval', '--run', j.runId, '--runs-root', RUNS_ROOT, '--stress', '--aupr-images', '0', '--backend', 'wasm'], join(outDir, `${j.runId}.stress.log`));
        if (s !== 0) log(`stress eval of ${j.runId} FAILED (see ${j.runId}.stress.log); its row has no stress columns`);
      }
      log(`${code === 0 ? 'done ' : 'FAILED'} ${j.runId} (${((Date.now() - r0) / 60000).toFixed(1)} min)`);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));

  type Cell = { original: MeanStd; flip: MeanStd; worst: MeanStd; gap: MeanStd; aupr: MeanStd; valAcc: MeanStd; runs: string[] };
  const table: Record<string, Cell> = {};
  for (const m of methods) {
    const evals: { headline: Record<string, number>; saliency?: { subsets: Record<string, { inputGradient: { mean: number } }> } }[] = [];
    const vals: number[] = [];
    const runs: string[] = [];
    for (const seed of SEEDS) {
      const id = `exp-${DATASET}-${methodSlug(m)}-s${seed}`;
      try {
        evals.push(JSON.parse(await readFile(join(RUNS_ROOT, id, 'eval.json'), 'utf8')));
        const st = JSON.parse(await readFile(join(RUNS_ROOT, id, 'state.json'), 'utf8')) as { bestMetric: number };
        vals.push(st.bestMetric);
        runs.push(id);
      } catch { /* failed run: reported above */ }
    }
    const h = (k: string): number[] => evals.map((e) => e.headline[k] ?? NaN);
    table[m.canonical] = {
      original: meanStd(h('Original')), flip: meanStd(h('Flip')), worst: meanStd(h('Worst-group')),
      gap: meanStd(evals.map((e) => e.headline.Original - e.headline.Flip)),
      aupr: meanStd(evals.map((e) => e.saliency?.subsets['test/flip']?.inputGradient.mean ?? NaN)),
      valAcc: meanStd(vals), runs,
    };
  }
  // The table itself comes from the report, so `make experiment` and `make report` print the same numbers.
  const report = await buildReport({
    runDirs: jobs.map((j) => join(RUNS_ROOT, j.runId)).filter((d) => existsSync(join(d, 'config.json'))),
    name: `experiment-${DATASET}`, reportsRoot: defaultRoot('reports'), saliencyImages: 4, seed: 0, backend: 'wasm', grids: true,
    command: `npx tsx bench/experiment-waterbirds.ts ${process.argv.slice(2).join(' ')}`.trim(), log,
  });
  const lines = [
    `epochs ${EPOCHS || 'preset'}${SIZE ? `, size ${SIZE}` : ''}${MODEL ? `, model ${MODEL}` : ''}${EXTRA.length ? `, ${EXTRA.join(' ')}` : ''}; wall time ${((Date.now() - t0) / 60000).toFixed(1)} min; `
      + `validation accuracy at the best epoch: ${Object.entries(table).map(([k, c]) => `${k} ${(100 * c.valAcc.mean).toFixed(1)} ± ${(100 * c.valAcc.std).toFixed(1)}`).join(', ')}`,
    '',
    report.markdown,
    `report: ${join(report.dir, 'index.html')}`,
  ];
  const base = table['orig'];
  let verdict: string;
  if (!base || !base.gap.n) verdict = 'shortcut check: no `orig` results';
  else if (base.gap.mean >= GAP_REQUIRED) verdict = `shortcut check PASSED: orig loses ${(100 * base.gap.mean).toFixed(1)} points from Original to Flip (≥ ${100 * GAP_REQUIRED})`;
  else verdict = `shortcut check FAILED: orig loses only ${(100 * base.gap.mean).toFixed(1)} points from Original to Flip (< ${100 * GAP_REQUIRED}). The dataset's shortcut must be stronger: rebuild ${DATASET} with a higher --correlation, a higher --difficulty or a smaller --fg-scale (dataset engineer's knobs).`;
  lines.push('', verdict);
  if (failed.length) lines.push('', `failed runs: ${failed.join(', ')} (see their logs in ${outDir}/)`);
  const text = lines.join('\n') + '\n';
  console.log(`\n${text}`);
  await writeFileAtomic(join(outDir, 'results.md'), text);
  await writeJsonAtomic(join(outDir, 'results.json'), { dataset: DATASET, seeds: SEEDS, epochs: EPOCHS, size: SIZE || null, model: MODEL || null, extra: EXTRA, table, verdict, failed, minutes: (Date.now() - t0) / 60000 });
  if (failed.length) process.exit(1);
}

main().catch((e) => { console.error(e); process.exit(1); });
