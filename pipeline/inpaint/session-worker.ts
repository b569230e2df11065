import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { TensorInfo } from './card.ts';

/**
 * An ONNX Runtime session living in a worker thread. onnxruntime-node's `session.run` is synchronous on the calling
 * thread (its promise only defers the call), so a session on the main thread would stall every resize, decode
 * callback and encode while it computes. In a worker, the main thread prepares batch k+1 and finishes batch k−1
 * while batch k runs.
 *
 * The worker's source is plain JavaScript evaluated from a string, so it needs no TypeScript loader (tsx, vitest
 * and a bare `node` all run it the same way).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const msg = (e) => String((e && e.message) || e);
(async () => {
  let session;
  try {
    session = await ort.InferenceSession.create(workerData.modelPath, workerData.options);
  } catch (e) {
    parentPort.postMessage({ type: 'error', message: msg(e) });
    return;
  }
  parentPort.postMessage({ type: 'ready', inputs: session.inputMetadata, outputs: session.outputMetadata });
  parentPort.on('message', async (m) => {
    if (m.type === 'close') {
      try { await session.release(); } catch {}
      parentPort.close();
      return;
    }
    try {
      const feeds = {};
      for (const [name, t] of Object.entries(m.feeds)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
      const res = await session.run(feeds, [m.output]);
      const t = res[m.output];
      const data = new Float32Array(t.data); // own copy: the result may live in memory we cannot transfer
      parentPort.postMessage({ type: 'result', id: m.id, data, dims: Array.from(t.dims) }, [data.buffer]);
    } catch (e) {
      parentPort.postMessage({ type: 'result', id: m.id, error: msg(e) });
    }
  });
})();
`;

export interface SessionOptionsLite {
  executionProviders: string[];
  intraOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** session config entries, e.g. { session: { intra_op: { allow_spinning: '0' } } } */
  extra?: Record<string, unknown>;
}

export interface RunResult {
  data: Float32Array;
  dims: number[];
}

type Pending = { resolve: (r: RunResult) => void; reject: (e: Error) => void };

export class WorkerSession {
  private nextId = 0;
  private pending = new Map<number, Pending>();
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly inputs: TensorInfo[],
    readonly outputs: TensorInfo[],
  ) {
    worker.on('message', (m: { type: string; id: number; data?: Float32Array; dims?: number[]; error?: string }) => {
      if (m.type !== 'result') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (!this.pending.size) worker.unref();
      if (m.error !== undefined) p.reject(new Error(`onnxruntime: ${m.error}`));
      else p.resolve({ data: m.data!, dims: m.dims! });
    });
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', () => this.failAll(new Error('the onnxruntime worker exited')));
    worker.unref(); // an idle session must not keep the process alive
  }

  /** Start the worker and create the session; rejects with onnxruntime's own message when creation fails. */
  static async create(modelPath: string, options: SessionOptionsLite): Promise<WorkerSession> {
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath, modelPath, options } });
    const ready = await new Promise<{ inputs: TensorInfo[]; outputs: TensorInfo[] }>((resolve, reject) => {
      worker.once('message', (m: { type: string; message?: string; inputs: TensorInfo[]; outputs: TensorInfo[] }) => {
        if (m.type === 'ready') resolve(m);
        else reject(new Error(m.message ?? 'session creation failed'));
      });
      worker.once('error', reject);
    }).catch(async (e: Error) => {
      await worker.terminate();
      throw e;
    });
    return new WorkerSession(worker, ready.inputs, ready.outputs);
  }

  /** Run one batch. The feed buffers are transferred to the worker: do not reuse them afterwards. */
  run(feeds: Record<string, { data: Float32Array; dims: number[] }>, output: string): Promise<RunResult> {
    if (this.closed) return Promise.reject(new Error('session is closed'));
    const id = this.nextId++;
    const transfer = Object.values(feeds).map((f) => f.data.buffer as ArrayBuffer);
    return new Promise<RunResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ type: 'run', id, feeds, output }, transfer);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.worker.ref();
    await new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ type: 'close' });
    });
  }

  private failAll(e: Error): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
