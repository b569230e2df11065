import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Starting worker threads whose entry is a .ts module, for the pipeline's row pool (pipeline/generate/pool.ts) and
 * the trainer's parallel step (trainer/parallel.ts), which may not import each other.
 *
 * The start-up protocol: the worker module posts `{ ready: true }` once it has loaded (plugins imported, backend up)
 * and is listening; if loading throws, the bootstrap posts `{ bootError }` instead. Anything else the worker posts
 * before it is ready is ignored here.
 */

/** What a worker posts while starting; after that the caller's own protocol applies. */
export type BootMessage = { ready: true } | { bootError: string };

/**
 * The JS source (for `new Worker(code, { eval: true })`) that registers tsx's ESM hooks in the worker, then imports
 * `entry`. `execArgv: ['--import', 'tsx']` is not enough on Node 20: the worker's entry is resolved before the hooks
 * are in place, so a .ts entry fails to load. A load failure is posted as `{ bootError }` because an eval'd worker's
 * own 'error' event would carry only the message, not the stack of the .ts module that threw.
 */
export function tsxWorkerBootstrap(entry: URL | string): string {
  const pkgFile = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const api = pathToFileURL(join(dirname(pkgFile), pkg.exports['./esm/api'].import.default)).href;
  const href = typeof entry === 'string' ? entry : entry.href;
  return `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(href)}); })
  .catch((e) => { require('node:worker_threads').parentPort.postMessage({ bootError: String(e && e.stack || e) }); });`;
}

/** How to start one worker. */
export interface TsWorkerOptions {
  /** names the worker in start-up errors: "<label> failed to start: …", e.g. 'generate worker' */
  label: string;
  /** the worker's `workerData` (structured-cloned; SharedArrayBuffers are shared) */
  workerData?: unknown;
}

interface Boot {
  worker: Worker;
  ready: Promise<void>;
  /** set by a failure at any time before detach, including after `ready` resolved */
  failure: Error | null;
  detach(): void;
}

function boot(code: string, opts: TsWorkerOptions): Boot {
  const worker = new Worker(code, { eval: true, workerData: opts.workerData });
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const ready = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
  // observed by startTsWorkers' Promise.all, except when a later worker's constructor throws first
  ready.catch(() => {});
  const b: Boot = { worker, ready, failure: null, detach: () => {} };
  const failed = (e: Error): void => { b.failure ??= e; settle.reject(e); };
  const onMessage = (m: Partial<BootMessage> | null): void => {
    if (m && 'bootError' in m && m.bootError !== undefined) failed(new Error(`${opts.label} failed to start: ${m.bootError}`));
    else if (m && 'ready' in m && m.ready) settle.resolve();
  };
  const onError = (e: Error): void => failed(e);
  const onExit = (code: number): void => failed(new Error(`${opts.label} exited with code ${code} while starting`));
  worker.on('message', onMessage);
  worker.on('error', onError);
  worker.on('exit', onExit);
  b.detach = () => {
    worker.off('message', onMessage);
    worker.off('error', onError);
    worker.off('exit', onExit);
  };
  return b;
}

/**
 * Start `count` workers running the .ts module `entry` (e.g. `new URL('./worker.ts', import.meta.url)`) and resolve
 * once every one has posted `{ ready: true }`. `options(i)` gives worker i its label and workerData.
 *
 * If any worker fails to start (boot error, 'error' event, or exit), every worker is terminated and the first
 * failure is thrown, so no half-started pool keeps the process alive. On success the start-up listeners are removed
 * and the caller must attach its own 'message', 'error' and 'exit' listeners before it next yields to the event
 * loop: a worker 'error' with no listener is an uncaught exception. Until the last worker is ready, a worker that
 * was ready and then failed is still caught here.
 */
export async function startTsWorkers(entry: URL | string, count: number, options: (index: number) => TsWorkerOptions): Promise<Worker[]> {
  if (count <= 0) return [];
  const code = tsxWorkerBootstrap(entry);
  const boots: Boot[] = [];
  try {
    for (let i = 0; i < count; i++) boots.push(boot(code, options(i)));
    await Promise.all(boots.map((b) => b.ready));
    const late = boots.find((b) => b.failure)?.failure;
    if (late) throw late;
  } catch (e) {
    // their own 'exit' now rejects their own `ready`, which Promise.all already observes: no unhandled rejection
    await Promise.all(boots.map((b) => b.worker.terminate()));
    throw e;
  }
  for (const b of boots) b.detach();
  return boots.map((b) => b.worker);
}

/** Start one worker running the .ts module `entry`; see startTsWorkers for the contract. */
export async function startTsWorker(entry: URL | string, opts: TsWorkerOptions): Promise<Worker> {
  const [worker] = await startTsWorkers(entry, 1, () => opts);
  return worker;
}
