/**
 * UnsortedSegmentSum for the wasm backend (missing in tfjs-backend-wasm 4.22). tfjs-core's gradient of
 * GatherV2 (tf.gather) is built on it, so without it no gather can be differentiated on wasm.
 *
 * out[s, ...] = Σ_{i : ids[i] = s} x[i, ...]; ids outside [0, numSegments) are dropped, as in TF.
 * A single pass over x on the wasm heap; the op is memory-bound, so a native kernel would not be faster.
 */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapView, sizeOf, type Info } from './wasm_util.ts';

export function unsortedSegmentSumWasm(backend: BackendWasm, x: Info, segmentIds: Info, numSegments: number): Info {
  const idRank = segmentIds.shape.length;
  for (let d = 0; d < idRank; d++) {
    if (segmentIds.shape[d] !== x.shape[d]) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape ${segmentIds.shape} must be a prefix of x shape ${x.shape}`);
    }
  }
  const inner = x.shape.slice(idRank);
  const sliceSize = sizeOf(inner);
  const out = backend.makeOutput([numSegments, ...inner], x.dtype);
  const xv = heapView(backend, x);
  const ids = heapView(backend, segmentIds);
  const ov = heapView(backend, out);
  ov.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const src = i * sliceSize, dst = s * sliceSize;
    for (let k = 0; k < sliceSize; k++) ov[dst + k] += xv[src + k];
  }
  return out;
}

export const unsortedSegmentSumWasmConfig: KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => unsortedSegmentSumWasm(
    backend as unknown as BackendWasm, inputs.x as TensorInfo, inputs.segmentIds as TensorInfo,
    (attrs as { numSegments: number }).numSegments),
};
