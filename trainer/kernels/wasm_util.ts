/**
 * Helpers for composing wasm kernels out of the wasm backend's own registered kernels.
 *
 * Composite kernels call other kernels' `kernelFunc`s directly with `TensorInfo`s (the pattern tfjs backends
 * use internally), not tf ops: nothing touches the engine or the gradient tape, and every intermediate must be
 * released with `release()` (the backend keeps a reference count per data id).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export type Info = tf.TensorInfo;
export type Attrs = Record<string, unknown>;

/** Runs the kernel currently registered as (name, 'wasm') and returns its single output. */
export function call(name: string, backend: BackendWasm, inputs: Record<string, Info>, attrs: Attrs = {}): Info {
  const out = callMulti(name, backend, inputs, attrs);
  if (out.length !== 1) throw new Error(`kernel ${name} returned ${out.length} outputs, expected 1`);
  return out[0];
}

export function callMulti(name: string, backend: BackendWasm, inputs: Record<string, Info>, attrs: Attrs = {}): Info[] {
  const kernel = tf.getKernel(name, 'wasm');
  if (!kernel) throw new Error(`Kernel '${name}' not registered for backend 'wasm' (needed by a composite kernel)`);
  const out = kernel.kernelFunc({ inputs, backend, attrs } as unknown as Parameters<tf.KernelFunc>[0]);
  return Array.isArray(out) ? out : [out];
}

export function release(backend: BackendWasm, ...infos: Info[]): void {
  for (const t of infos) backend.disposeData(t.dataId);
}

export function reshape(backend: BackendWasm, x: Info, shape: number[]): Info {
  return call('Reshape', backend, { x }, { shape });
}

/** A new tensor on the wasm heap holding `values`. */
export function upload(backend: BackendWasm, values: Float32Array | Int32Array, shape: number[]): Info {
  const dtype = values instanceof Int32Array ? 'int32' : 'float32';
  return backend.makeOutput(shape, dtype, undefined, values);
}

/** A zero-copy view of a tensor's data on the wasm heap; valid until the next allocation. */
export function heapView(backend: BackendWasm, t: Info): Float32Array | Int32Array | Uint8Array {
  return backend.typedArrayFromHeap(t);
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
