import { parentPort, workerData } from 'node:worker_threads';
import { processRow, type RowJob, type RunContext } from './item.ts';

/** Worker thread: runs the pure infills (and sharp decode/encode) for rows the main thread sends. */
const { ctx, plugins } = workerData as { ctx: RunContext; plugins: string[] };
for (const p of plugins) await import(p);

parentPort!.on('message', (msg: { id: number; job: RowJob }) => {
  processRow(msg.job, ctx).then(
    (result) => parentPort!.postMessage({ id: msg.id, result }),
    (e: Error) => parentPort!.postMessage({ id: msg.id, error: { message: e.message, stack: e.stack } }),
  );
});
parentPort!.postMessage({ ready: true });
