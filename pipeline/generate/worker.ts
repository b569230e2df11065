import { parentPort, workerData } from 'node:worker_threads';
import { processRow, type RowJob, type RunContext } from './item.ts';

/** Worker thread: runs the pure infills (and sharp decode/encode) for rows the main thread sends. */
const { ctx, plugins } = workerData as { ctx: RunContext; plugins: string[] };
if (plugins.length) {
  // The bootstrap registers tsx's ESM hooks only; a .ts plugin in a folder without "type": "module" is CommonJS
  // and needs the require hooks too, as `--import tsx` gives the main thread.
  const { register } = await import('tsx/cjs/api');
  register();
}
for (const p of plugins) await import(p);

parentPort!.on('message', (msg: { id: number; job: RowJob }) => {
  processRow(msg.job, ctx).then(
    (result) => parentPort!.postMessage({ id: msg.id, result }),
    // errno fields too: the main thread turns ENOSPC & co. into their one-paragraph message and exit status
    (e: NodeJS.ErrnoException) => parentPort!.postMessage({ id: msg.id, error: { message: e.message, stack: e.stack, code: e.code, path: e.path, syscall: e.syscall } }),
  );
});
parentPort!.postMessage({ ready: true });
