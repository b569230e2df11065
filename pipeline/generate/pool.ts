import type { Worker } from 'node:worker_threads';
import { startTsWorkers } from '../../common/worker-threads.ts';
import { processRow, type RowJob, type RowResult, type RunContext } from './item.ts';

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

/** A runner for `workers` threads; with workers ≤ 1 rows run in this thread (no start-up cost, same results). */
export async function createRowRunner(workers: number, ctx: RunContext, plugins: string[]): Promise<RowRunner> {
  if (workers <= 1) {
    return { workers: 1, inflight: PER_WORKER, run: (job) => processRow(job, ctx), close: async () => {} };
  }
  return ThreadPool.start(workers, ctx, plugins);
}

/** A row's failure as a worker posts it: the message and stack, and the errno fields of fs errors. */
interface WorkerError {
  message: string;
  stack?: string;
  code?: string;
  path?: string;
  syscall?: string;
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
      slot.worker.on('message', (msg: { id: number; result?: RowResult; error?: WorkerError }) => {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        slot.busy--;
        if (msg.error) {
          const e: NodeJS.ErrnoException = new Error(msg.error.message);
          e.stack = msg.error.stack;
          if (msg.error.code !== undefined) e.code = msg.error.code;
          if (msg.error.path !== undefined) e.path = msg.error.path;
          if (msg.error.syscall !== undefined) e.syscall = msg.error.syscall;
          p.reject(e);
        } else p.resolve(msg.result!);
        this.pump();
      });
      slot.worker.on('error', (e) => this.fail(e));
      slot.worker.on('exit', (code) => { if (code !== 0) this.fail(new Error(`generate worker exited with code ${code}`)); });
    }
  }

  static async start(n: number, ctx: RunContext, plugins: string[]): Promise<ThreadPool> {
    const workers = await startTsWorkers(new URL('./worker.ts', import.meta.url), n, () => ({ label: 'generate worker', workerData: { ctx, plugins } }));
    // the constructor attaches the run-time listeners synchronously, as startTsWorkers requires
    return new ThreadPool(n, workers.map((worker) => ({ worker, busy: 0 })));
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
