/**
 * Identity for the wasm backend that shares the input's buffer instead of copying it.
 *
 * Why: the engine clones (Identity) every tensor it saves for the backward pass; the stock wasm Identity copies
 * the data, which in a saliency (double-backprop) step of the small ResNet was 1551 copies, ~5% of the step.
 * tfjs tensors are immutable and every wasm kernel writes a fresh output, so sharing is safe; it is what the
 * cpu backend's Identity and the wasm backend's own Reshape already do (reference-counted data ids).
 */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export const identityWasmConfig: KernelConfig = {
  kernelName: 'Identity',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend }) => {
    const x = inputs.x as TensorInfo;
    (backend as unknown as BackendWasm).incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  },
};
