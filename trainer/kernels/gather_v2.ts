/**
 * GatherV2 with batchDims > 0 for the wasm backend.
 *
 * Why: tfjs-backend-wasm 4.22's GatherV2 reads out of bounds when batchDims > 0 (tf.gather(logits, y, 1, 1),
 * the natural way to pick each image's own target logit, returned [3, 4, 3, 5.6e-44] where cpu returns
 * [3, 4, 8, 11]). We turn the batched gather into a plain one over flattened rows, which the stock kernel does
 * correctly, and hand batchDims = 0 calls straight to the stock kernel.
 */
import { backend_util, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapView, release, reshape, upload, type Info } from './wasm_util.ts';

export function gatherBatchedWasm(
  stock: KernelFunc, backend: BackendWasm, x: Info, indices: Info, axis: number, batchDims: number,
): Info {
  const parsedAxis = util.parseAxisParam(axis, x.shape)[0];
  const shape = backend_util.segment_util.collectGatherOpShapeInfo(
    x, indices, parsedAxis, batchDims);
  const { batchSize, outerSize, dimSize, sliceSize, outputShape } = shape;
  const idx = heapView(backend, indices);
  const perBatch = idx.length / batchSize;
  const flat = new Int32Array(batchSize * outerSize * perBatch);
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let r = 0; r < outerSize; r++) {
      const rowBase = (b * outerSize + r) * dimSize;
      for (let k = 0; k < perBatch; k++) {
        const i = idx[b * perBatch + k];
        if (i < 0 || i >= dimSize) throw new Error(`GatherV2: the index value ${i} is not in [0, ${dimSize - 1}]`);
        flat[o++] = rowBase + i;
      }
    }
  }
  const rows = reshape(backend, x, [batchSize * outerSize * dimSize, sliceSize]);
  const flatIdx = upload(backend, flat, [flat.length]);
  try {
    const gathered = stock({ inputs: { x: rows, indices: flatIdx }, backend, attrs: { axis: 0, batchDims: 0 } } as never) as Info;
    gathered.shape = outputShape;
    return gathered;
  } finally {
    release(backend, rows, flatIdx);
  }
}

/** `stock` is the wasm backend's own GatherV2 config; its setupFunc binds the C++ function at backend init */
export function gatherV2WasmConfig(stockConfig: KernelConfig): KernelConfig {
  const stock = stockConfig.kernelFunc;
  return {
    kernelName: 'GatherV2',
    backendName: 'wasm',
    setupFunc: stockConfig.setupFunc,
    kernelFunc: (args) => {
      const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
      if (!batchDims) return stock(args);
      return gatherBatchedWasm(stock, args.backend as unknown as BackendWasm,
        args.inputs.x as TensorInfo, args.inputs.indices as TensorInfo, axis, batchDims);
    },
  };
}
