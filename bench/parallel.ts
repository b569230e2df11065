/**
 * Data-parallel step benchmark (docs/cluster.md): step time of one process (step.ts's trainStep) against the
 * data-parallel step of trainer/parallel.ts (this thread + N−1 workers, and optionally N workers with this thread
 * only summing), same run, steps interleaved so that a change in machine load hits every variant alike.
 *
 * Besides wall time it reports the CPU time of the whole process per step (all threads) and cores used
 * (CPU / wall): on a machine shared with other jobs the wall-time speed-up is bounded by the CPU share the scheduler
 * grants, and cores-used says how much of the second core the step actually got. The machine's idle share
 * (/proc/stat) and load average are printed before and after; read the speed-up against them.
 *
 * usage: npx tsx bench/parallel.ts [--backend wasm] [--model small] [--size 64] [--batch 32] [--threads 2]
 *          [--steps 5] [--warmup 1] [--methods orig,sal] [--workers-only]
 */
import { loadavg, cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, syntheticBatch as sharedSyntheticBatch } from './synthetic-batch.ts';
import { writeJsonAtomic } from '../manifests/index.ts';
import { initBackend, type BackendChoice } from '../trainer/backend.ts';
import type { TrainBatch } from '../trainer/data.ts';
import { parseMethod } from '../trainer/method.ts';
import { createModel, presetConfig, type PresetName } from '../trainer/model.ts';
import { startParallelStep, type ParallelStep } from '../trainer/parallel.ts';
import { makeOptimizer } from '../trainer/optimizer-state.ts';
import { trainStep, type StepContext, type StepStats } from '../trainer/step.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');


const BACKEND = arg('backend', 'wasm') as BackendChoice;
const MODEL = arg('model', 'small') as PresetName;
const S = Number(arg('size', '64'));
const B = Number(arg('batch', '32'));
const THREADS = Number(arg('threads', '2'));
const STEPS = Number(arg('steps', '5'));
const WARMUP = Number(arg('warmup', '1'));
const METHODS = arg('methods', 'orig,sal').split(',');
const WORKERS_ONLY = process.argv.includes('--workers-only');
const K = 2;

const syntheticBatch = (withGenerated: boolean): TrainBatch =>
  sharedSyntheticBatch('bench-parallel', { size: S, batch: B, classes: K, withGenerated });

/** A fresh copy: the parallel step transfers (detaches) the shard arrays it sends. */
function copyBatch(b: TrainBatch): TrainBatch {
  return { ...b, x: b.x.slice(), labels: b.labels.slice(), role: b.role.slice(), parent: b.parent.slice(), term: b.term.slice(), ids: [...b.ids], objMask: b.objMask?.slice() ?? null, maskUsable: b.maskUsable.slice() };
}

interface Variant {
  name: string;
  run: (ctx: StepContext, batch: TrainBatch, seed: number) => Promise<StepStats>;
  ctx: StepContext;
  wallMs: number[];
  cpuMs: number[];
}

const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/**
 * Idle share of all CPUs over `ms` from /proc/stat (Linux; null elsewhere). A better sign of a quiet machine than the
 * 1-minute load average, which lags and counts this benchmark's own threads.
 */
async function machineIdle(ms = 2000): Promise<number | null> {
  const read = (): number[] | null => {
    try {
      return readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    } catch { return null; }
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  if (!a || !b) return null;
  const total = b.reduce((s, v) => s + v, 0) - a.reduce((s, v) => s + v, 0);
  return total > 0 ? (b[3] - a[3]) / total : null;
}
const pct = (x: number | null): string => (x === null ? 'n/a' : `${(100 * x).toFixed(0)}%`);

async function main(): Promise<void> {
  const backend = await initBackend({ backend: BACKEND, log: (l) => process.stderr.write(`${l}\n`) });
  const cfg = presetConfig(MODEL, K);
  const load0 = loadavg();
  const idle0 = await machineIdle();
  console.log(`backend: ${backend.name} (${backend.reason}); ${cpus().length} CPUs; load average ${load0.map((l) => l.toFixed(2)).join(' ')}; machine idle ${pct(idle0)} before`);
  console.log(`model ${MODEL} @ ${S} px, batch ${B} originals; ${STEPS} timed steps after ${WARMUP} warm-up, variants interleaved per step`);

  const t0 = performance.now();
  const pools: { name: string; pool: ParallelStep }[] = [];
  pools.push({ name: `${THREADS} threads (main + ${THREADS - 1} worker${THREADS > 2 ? 's' : ''})`, pool: await startParallelStep({ threads: THREADS, model: cfg, backend: backend.name as BackendChoice }) });
  if (WORKERS_ONLY) pools.push({ name: `${THREADS} workers (main sums)`, pool: await startParallelStep({ threads: THREADS, model: cfg, backend: backend.name as BackendChoice, computeOnMain: false }) });
  console.log(`workers started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const results: Record<string, unknown>[] = [];
  for (const spec of METHODS) {
    const method = parseMethod(spec);
    const batch = syntheticBatch(method.cf.length + method.f.length > 0);
    const ctxFor = (): StepContext => ({
      model: createModel(cfg, 0), optimizer: makeOptimizer({ optimizer: 'sgd', lr: 0.01, momentum: 0.9 }), method, cfLoss: 'logp', numClasses: K, clipNorm: 1, weightDecay: 0,
    });
    const variants: Variant[] = [
      { name: '1 process (trainStep)', run: async (c, b, s) => trainStep(c, b, s), ctx: ctxFor(), wallMs: [], cpuMs: [] },
      ...pools.map(({ name, pool }) => ({ name, run: pool.step.bind(pool), ctx: ctxFor(), wallMs: [] as number[], cpuMs: [] as number[] })),
    ];
    for (let s = 0; s < WARMUP + STEPS; s++) {
      for (const v of variants) {
        const b = copyBatch(batch);
        const c0 = process.cpuUsage();
        const w0 = performance.now();
        await v.run(v.ctx, b, 100 + s);
        const wall = performance.now() - w0;
        const cpu = process.cpuUsage(c0);
        if (s >= WARMUP) { v.wallMs.push(wall); v.cpuMs.push((cpu.user + cpu.system) / 1000); }
      }
    }
    const base = median(variants[0].wallMs);
    console.log(`\n${method.canonical} (${batch.n} images/step)`);
    console.log('variant                              ms/step (median)   min ms   CPU ms/step   cores used   speed-up');
    for (const v of variants) {
      const wall = median(v.wallMs), cpu = median(v.cpuMs);
      const cores = v.cpuMs.reduce((a, c) => a + c, 0) / v.wallMs.reduce((a, w) => a + w, 0);
      console.log(`${v.name.padEnd(36)} ${wall.toFixed(0).padStart(16)} ${Math.min(...v.wallMs).toFixed(0).padStart(8)} ${cpu.toFixed(0).padStart(13)} ${cores.toFixed(2).padStart(12)} ${(base / wall).toFixed(2).padStart(9)}x`);
      results.push({ method: method.canonical, images: batch.n, variant: v.name, ms_per_step: v.wallMs, cpu_ms_per_step: v.cpuMs, median_ms: wall, cores_used: cores, speedup: base / wall });
      v.ctx.model.dispose();
      v.ctx.optimizer.dispose();
    }
    // CPU time is the work done whatever the load: the parallel step's extra work bounds its idle-machine speed-up
    const cpuBase = median(variants[0].cpuMs);
    for (const v of variants.slice(1)) {
      const extra = median(v.cpuMs) / cpuBase;
      console.log(`  ${v.name}: ${extra.toFixed(2)}x the CPU work of 1 process → at most ${(THREADS / extra).toFixed(2)}x faster on ${THREADS} idle cores`);
    }
  }
  await Promise.all(pools.map((p) => p.pool.close()));
  const load1 = loadavg();
  const idle1 = await machineIdle();
  console.log(`\nload average after: ${load1.map((l) => l.toFixed(2)).join(' ')}; machine idle ${pct(idle1)} after.`);
  console.log(`A speed-up is the idle-machine figure only when the machine was idle before and after and the parallel variant used ~${THREADS} cores; otherwise other jobs took CPU.`);
  await writeJsonAtomic(join(ROOT, '.bench', 'parallel.json'), {
    backend, model: MODEL, size: S, batch: B, threads: THREADS, steps: STEPS, load_before: load0, load_after: load1, idle_before: idle0, idle_after: idle1, results, time: new Date().toISOString(),
  });
  console.log('wrote .bench/parallel.json');
}

main().catch((e) => { console.error(e); process.exit(1); });
