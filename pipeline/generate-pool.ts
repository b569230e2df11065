import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { processRow, type RowJob, type RowResult, type RunContext } from './generate-item.ts';

/** Runs row jobs: in this thread (workers ≤ 1) or on a pool of worker threads. Results never depend on which. */
export interface RowRunner {
  readonly workers: number;
  /** rows a caller should keep in flight to keep every worker busy */
  readonly inflight: number;
  run(job: RowJob): Promise<RowResult>;
  close(): Promise<void>;
}

/**
 * Rows in flight per worker: while some wait on sharp (libuv threads) the worker's JS fills others. Each row holds
 * about 1 MB (its pixels, masks and outputs), so memory stays flat. CFGEN_PER_WORKER overrides it (bench tuning).
 */
export const PER_WORKER = Math.max(1, Number(process.env.CFGEN_PER_WORKER ?? 4));

export async function createRowRunner(workers: number, ctx: RunContext, plugins: string[]): Promise<RowRunner> {
  if (workers <= 1) {
    return { workers: 1, inflight: PER_WORKER, run: (job) => processRow(job, ctx), close: async () => {} };
  }
  return ThreadPool.start(workers, ctx, plugins);
}

/**
 * Worker threads start from a tiny JS bootstrap that registers tsx's ESM hooks in the worker, then imports our .ts
 * worker. (`execArgv: ['--import', 'tsx']` is not enough on Node 20: the worker's entry is resolved before the hooks.)
 */
function workerBootstrap(): string {
  const pkgFile = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const api = pathToFileURL(join(dirname(pkgFile), pkg.exports['./esm/api'].import.default)).href;
  const entry = new URL('./generate-worker.ts', import.meta.url).href;
  return `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })
  .catch((e) => { require('node:worker_threads').parentPort.postMessage({ bootError: String(e && e.stack || e) }); });`;
}

interface Slot {
  worker: Worker;
  busy: number;
}

class ThreadPool implements RowRunner {
  readonly inflight: number;
  private nextId = 0;
  private pending = new Map<number, { resolve: (r: RowResult) => void; reject: (e: Error) => void; slot: Slot }>();
  private queue: { job: RowJob; resolve: (r: RowResult) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | null = null;

  private constructor(readonly workers: number, private slots: Slot[]) {
    this.inflight = workers * PER_WORKER;
    for (const slot of slots) {
      slot.worker.on('message', (msg: { id: number; result?: RowResult; error?: { message: string; stack?: string } }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        slot.busy--;
        if (msg.error) {
          const e = new Error(msg.error.message);
          e.stack = msg.error.stack;
          p.reject(e);
        } else p.resolve(msg.result!);
        this.pump();
      });
      slot.worker.on('error', (e) => this.fail(e));
      slot.worker.on('exit', (code) => { if (code !== 0) this.fail(new Error(`generate worker exited with code ${code}`)); });
    }
  }

  static async start(n: number, ctx: RunContext, plugins: string[]): Promise<ThreadPool> {
    const code = workerBootstrap();
    const slots = await Promise.all(Array.from({ length: n }, () => new Promise<Slot>((resolve, reject) => {
      const worker = new Worker(code, { eval: true, workerData: { ctx, plugins } });
      const onReady = (m: { ready?: boolean; bootError?: string }) => {
        if (m.bootError) { worker.off('message', onReady); void worker.terminate(); reject(new Error(`generate worker failed to start: ${m.bootError}`)); }
        if (m.ready) { worker.off('message', onReady); resolve({ worker, busy: 0 }); }
      };
      worker.on('message', onReady);
      worker.once('error', reject);
    })));
    return new ThreadPool(n, slots);
  }

  run(job: RowJob): Promise<RowResult> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length) {
      const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (slot.busy >= PER_WORKER) return;
      const { job, resolve, reject } = this.queue.shift()!;
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject, slot });
      slot.busy++;
      slot.worker.postMessage({ id, job });
    }
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const q of this.queue) q.reject(e);
    this.queue = [];
  }

  async close(): Promise<void> {
    this.failed ??= new Error('pool closed');
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
