/**
 * Replacements for the wasm backend's MaxPoolGrad and MaxPoolWithArgmax.
 *
 * Why: tfjs-backend-wasm 4.22 starts its running max at FLT_MIN (the smallest *positive* float) instead of -inf,
 * so any window whose values are all <= 0 routes its gradient to the wrong place (or nowhere), and
 * MaxPoolWithArgmax returns 0 / index 0 for it. In a pre-activation ResNet the root max pool sees raw conv
 * outputs, half of them negative; measured on a 3x3/2 'same' pool of all-negative input, 1 of 666 units of
 * gradient arrived. Ties also go to the last max where cpu (and TF) pick the first.
 *
 * Both kernels here use `maxPoolArgmax`, which mirrors the cpu backend exactly: windows scanned row-major,
 * first strict maximum from -inf, padding never selected, NaN windows select nothing (-1).
 */
import { backend_util, type KernelConfig, type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapView, type Info } from './wasm_util.ts';

type PoolPad = 'valid' | 'same' | number | backend_util.ExplicitPadding;

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: PoolPad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/**
 * For each output element of the max pool of `x` (NHWC), the flat index (batch included) of the input element
 * it takes, or -1 when its window holds only NaN.
 */
export function maxPoolArgmax(x: ArrayLike<number>, info: backend_util.Conv2DInfo): Int32Array {
  const { batchSize, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth } = info;
  const fh = info.effectiveFilterHeight, fw = info.effectiveFilterWidth;
  const dh = info.dilationHeight, dw = info.dilationWidth;
  const { top, left } = info.padInfo;
  const out = new Int32Array(batchSize * outHeight * outWidth * c);
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    for (let yr = 0; yr < outHeight; yr++) {
      const rCorner = yr * strideHeight - top;
      let rMin = rCorner;
      while (rMin < 0) rMin += dh;
      const rMax = Math.min(inHeight, fh + rCorner);
      for (let yc = 0; yc < outWidth; yc++) {
        const cCorner = yc * strideWidth - left;
        let cMin = cCorner;
        while (cMin < 0) cMin += dw;
        const cMax = Math.min(inWidth, fw + cCorner);
        for (let ch = 0; ch < c; ch++, o++) {
          let best = Number.NEGATIVE_INFINITY, pos = -1;
          for (let r = rMin; r < rMax; r += dh) {
            const rowBase = (b * inHeight + r) * inWidth;
            for (let col = cMin; col < cMax; col += dw) {
              const i = (rowBase + col) * c + ch;
              const v = x[i];
              if (v > best) { best = v; pos = i; }
            }
          }
          out[o] = pos;
        }
      }
    }
  }
  return out;
}

export function poolInfo(xShape: number[], attrs: PoolAttrs): backend_util.Conv2DInfo {
  return backend_util.computePool2DInfo(
    xShape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
}

export function maxPoolGradWasm(backend: BackendWasm, dy: Info, input: Info, attrs: PoolAttrs): Info {
  const info = poolInfo(input.shape, attrs);
  const dx = backend.makeOutput(input.shape, 'float32');
  // views after the allocation: an allocation may grow (and detach) the wasm heap
  const positions = maxPoolArgmax(heapView(backend, input), info);
  const dyv = heapView(backend, dy);
  const dxv = heapView(backend, dx);
  dxv.fill(0);
  for (let o = 0; o < positions.length; o++) {
    const p = positions[o];
    if (p >= 0) dxv[p] += dyv[o];
  }
  return dx;
}

export function maxPoolWithArgmaxWasm(
  backend: BackendWasm, x: Info, attrs: PoolAttrs & { includeBatchInIndex: boolean },
): Info[] {
  const info = poolInfo(x.shape, attrs);
  const pooled = backend.makeOutput(info.outShape, x.dtype);
  const indexes = backend.makeOutput(info.outShape, 'int32');
  const xv = heapView(backend, x);
  const positions = maxPoolArgmax(xv, info);
  const pv = heapView(backend, pooled);
  const iv = heapView(backend, indexes);
  const perImage = info.inHeight * info.inWidth * info.inChannels;
  for (let o = 0; o < positions.length; o++) {
    const p = positions[o];
    pv[o] = p >= 0 ? xv[p] : Number.NaN;
    iv[o] = attrs.includeBatchInIndex || p < 0 ? p : p % perImage;
  }
  return [pooled, indexes];
}

export const maxPoolGradWasmConfig: KernelConfig = {
  kernelName: 'MaxPoolGrad',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => maxPoolGradWasm(
    backend as unknown as BackendWasm, inputs.dy as TensorInfo, inputs.input as TensorInfo,
    attrs as unknown as PoolAttrs),
};

export const maxPoolWithArgmaxWasmConfig: KernelConfig = {
  kernelName: 'MaxPoolWithArgmax',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => maxPoolWithArgmaxWasm(
    backend as unknown as BackendWasm, inputs.x as TensorInfo,
    attrs as unknown as PoolAttrs & { includeBatchInIndex: boolean }),
};
