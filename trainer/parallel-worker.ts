/**
 * A data-parallel step worker (started by trainer/parallel.ts; buffers and messages in parallel-protocol.ts): its own
 * tfjs backend and model copy; per request it loads the published weights, computes its shard's gradient with
 * step.ts's trainStep and writes it to its gradient buffer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from './backend.ts';
import { createModel } from './model.ts';
import { loadFlatWeights, paramLayout, shardGradient, type StepRequest, type WorkerInit, type WorkerReply } from './parallel-protocol.ts';

const port = parentPort!;
const init = workerData as WorkerInit & { slot: number };
const post = (m: WorkerReply): void => port.postMessage(m);

await initBackend({ backend: init.backend, log: (line) => post({ log: line }) });
const model = createModel(init.model, 0);
const layout = paramLayout(init.model);
const control = new Int32Array(init.control);
const weights = new Float32Array(init.weights);
const grads = new Float32Array(init.grads);
let loadedVersion = -1;
let gradsVersion = 0;

port.on('message', (req: StepRequest) => {
  try {
    // acquire: pairs with the main thread's Atomics.store after it wrote the weights
    const published = Atomics.load(control, 0);
    if (published !== req.version) throw new Error(`weights version ${published}, request expects ${req.version}`);
    if (loadedVersion !== req.version) { loadFlatWeights(model.variables, layout, weights); loadedVersion = req.version; }
    const result = shardGradient(model, req.loss, req.shard, req.seed, layout, grads);
    gradsVersion++;
    Atomics.store(control, 1 + init.slot, gradsVersion);
    post({ id: req.id, result, gradsVersion });
  } catch (e) {
    const err = e as Error;
    post({ id: req.id, error: { message: err.message, stack: err.stack } });
  }
});
post({ ready: true });
