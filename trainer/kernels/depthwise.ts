/**
 * Depthwise-convolution gradients for MobileNet-style backbones (trainer/backbone/):
 *
 * - wasm kernels `DepthwiseConv2dNativeBackpropInput` and `DepthwiseConv2dNativeBackpropFilter`: tfjs-backend-wasm
 *   4.22 has the forward kernel only, so any gradient through a depthwise layer threw "not registered".
 * - gradients of those two kernels (every backend): tfjs-core has none, so the saliency penalty (a loss on an
 *   input gradient, differentiated again w.r.t. the weights) could not pass a depthwise layer.
 *
 * Forward: y[b,p,q,c·M+m] = Σ_{i,j} x[b, p·sh + i·dh − top, q·sw + j·dw − left, c] · w[i,j,c,m] (zero outside x).
 * It is bilinear in (x, w); the two backprop kernels are its adjoints, and each one's gradient is again the
 * forward or the other adjoint (see DEPTHWISE_GRADIENTS). The wasm kernels are plain loops over the heap: depthwise
 * layers are ~3% of a MobileNetV2's multiply-adds, so their backward is not where the time goes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type GradConfig, type KernelConfig, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { heapView, type Info } from './wasm_util.ts';

type Pad = 'valid' | 'same' | number | backend_util.ExplicitPadding;
interface DepthwiseAttrs {
  strides: number | [number, number];
  pad: Pad;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function geometry(xShape: number[], filterShape: number[], a: DepthwiseAttrs): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number],
    a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true);
}

/**
 * The loop both adjoints share: every (output position, tap) whose input pixel is inside x, with the flat
 * offsets of that pixel's channels in x, in y (= dy) and in w. `inner` does the channel loop (inlined per
 * kernel: a callback per multiply-add cost 3× more).
 */
function eachPixelTap(info: backend_util.Conv2DInfo, inner: (xBase: number, yBase: number, wBase: number) => void): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth,
    strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { top, left } = info.padInfo;
  for (let b = 0; b < batchSize; b++) {
    for (let p = 0; p < outHeight; p++) {
      for (let i = 0; i < filterHeight; i++) {
        const r = p * strideHeight + i * dilationHeight - top;
        if (r < 0 || r >= inHeight) continue;
        for (let q = 0; q < outWidth; q++) {
          const yBase = ((b * outHeight + p) * outWidth + q) * outChannels;
          for (let j = 0; j < filterWidth; j++) {
            const s = q * strideWidth + j * dilationWidth - left;
            if (s < 0 || s >= inWidth) continue;
            inner(((b * inHeight + r) * inWidth + s) * inChannels, yBase, (i * filterWidth + j) * outChannels);
          }
        }
      }
    }
  }
}

function zeroOutput(backend: BackendWasm, shape: number[]): Info {
  const out = backend.makeOutput(shape, 'float32');
  (heapView(backend, out) as Float32Array).fill(0);
  return out;
}

/** dx = the adjoint of the forward in x, for dy and filter. */
function backpropInputWasm(backend: BackendWasm, dy: Info, filter: Info, a: DepthwiseAttrs & { inputShape: number[] }): Info {
  const info = geometry(a.inputShape, filter.shape, a);
  const out = zeroOutput(backend, a.inputShape);
  // views after the allocation: it may move the heap
  const dx = heapView(backend, out) as Float32Array, g = heapView(backend, dy) as Float32Array, w = heapView(backend, filter) as Float32Array;
  const C = info.inChannels, M = info.outChannels / info.inChannels;
  eachPixelTap(info, (xb, yb, wb) => {
    if (M === 1) { for (let c = 0; c < C; c++) dx[xb + c] += g[yb + c] * w[wb + c]; return; }
    for (let c = 0; c < C; c++) { let acc = 0; for (let m = 0; m < M; m++) acc += g[yb + c * M + m] * w[wb + c * M + m]; dx[xb + c] += acc; }
  });
  return out;
}

/** dw = the adjoint of the forward in w, for x and dy. */
function backpropFilterWasm(backend: BackendWasm, x: Info, dy: Info, a: DepthwiseAttrs & { filterShape: number[] }): Info {
  const info = geometry(x.shape, a.filterShape, a);
  const out = zeroOutput(backend, a.filterShape);
  const dw = heapView(backend, out) as Float32Array, xs = heapView(backend, x) as Float32Array, g = heapView(backend, dy) as Float32Array;
  const C = info.inChannels, M = info.outChannels / info.inChannels;
  eachPixelTap(info, (xb, yb, wb) => {
    if (M === 1) { for (let c = 0; c < C; c++) dw[wb + c] += xs[xb + c] * g[yb + c]; return; }
    for (let c = 0; c < C; c++) { const xv = xs[xb + c]; for (let m = 0; m < M; m++) dw[wb + c * M + m] += xv * g[yb + c * M + m]; }
  });
  return out;
}

export const depthwiseBackpropInputWasmConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => backpropInputWasm(backend as unknown as BackendWasm, inputs.dy as TensorInfo,
    inputs.filter as TensorInfo, attrs as unknown as DepthwiseAttrs & { inputShape: number[] }),
};

export const depthwiseBackpropFilterWasmConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  backendName: 'wasm',
  kernelFunc: ({ inputs, backend, attrs }) => backpropFilterWasm(backend as unknown as BackendWasm, inputs.x as TensorInfo,
    inputs.dy as TensorInfo, attrs as unknown as DepthwiseAttrs & { filterShape: number[] }),
};

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor =>
  tf.engine().runKernel(name, inputs, attrs as NamedAttrMap) as tf.Tensor;
const forwardAttrs = (a: DepthwiseAttrs): object =>
  ({ strides: a.strides, pad: a.pad, dilations: a.dilations ?? 1, dimRoundingMode: a.dimRoundingMode, dataFormat: 'NHWC' });

/** <ddx, F_xᵀ(dy; w)> = <F(ddx; w), dy>: so ∂/∂dy = F(ddx; w) and ∂/∂w = F_wᵀ(ddx; dy). */
const backpropInputGrad: GradConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  inputsToSave: ['dy', 'filter'],
  gradFunc: (ddx, [dy, filter], attrs) => {
    const a = attrs as unknown as DepthwiseAttrs;
    const dd = ddx as tf.Tensor;
    return {
      dy: () => run('DepthwiseConv2dNative', { x: dd, filter }, forwardAttrs(a)),
      filter: () => run('DepthwiseConv2dNativeBackpropFilter', { x: dd, dy }, { ...forwardAttrs(a), filterShape: filter.shape }),
    };
  },
};

/** <ddw, F_wᵀ(x; dy)> = <F(x; ddw), dy>: so ∂/∂dy = F(x; ddw) and ∂/∂x = F_xᵀ(dy; ddw). */
const backpropFilterGrad: GradConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  inputsToSave: ['x', 'dy'],
  gradFunc: (ddw, [x, dy], attrs) => {
    const a = attrs as unknown as DepthwiseAttrs;
    const dd = ddw as tf.Tensor;
    return {
      dy: () => run('DepthwiseConv2dNative', { x, filter: dd }, forwardAttrs(a)),
      x: () => run('DepthwiseConv2dNativeBackpropInput', { dy, filter: dd }, { ...forwardAttrs(a), inputShape: x.shape }),
    };
  },
};

/** Gradients of the depthwise backprop kernels (backend-independent; registered by registerExtraGradients). */
export const DEPTHWISE_GRADIENTS: GradConfig[] = [backpropInputGrad, backpropFilterGrad];
