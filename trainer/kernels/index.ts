/**
 * Registration of our extra tfjs kernels and gradients. See docs/backends-and-kernels.md for the why of each.
 *
 *   registerWasmKernels()    kernels the wasm backend lacks or gets wrong (call before running wasm)
 *   registerExtraGradients() backend-independent gradients needed for double backprop
 * Both are idempotent and return the names they registered.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs-core';
import { batchMatMulWasmConfig } from './batch_mat_mul.ts';
import { conv2DBackpropFilterWasmConfig } from './conv2d_backprop_filter.ts';
import { conv2DBackpropInputWasmConfig } from './conv2d_backprop_input.ts';
import { gatherV2WasmConfig } from './gather_v2.ts';
import { identityWasmConfig } from './identity.ts';
import { EXTRA_GRADIENTS } from './gradients.ts';
import { fusedBatchNormGrad } from './batch_norm_grad.ts';
import { DEPTHWISE_GRADIENTS, depthwiseBackpropFilterWasmConfig, depthwiseBackpropInputWasmConfig } from './depthwise.ts';
import { maxPoolGradWasmConfig, maxPoolWithArgmaxWasmConfig } from './max_pool.ts';
import { unsortedSegmentSumWasmConfig } from './unsorted_segment_sum.ts';

/** why each wasm kernel is registered: 'missing' in tfjs-backend-wasm 4.22, or 'replaces' a wrong one */
export const WASM_KERNELS: ReadonlyArray<{ name: string; action: 'adds' | 'replaces'; why: string }> = [
  { name: 'Conv2DBackpropFilter', action: 'adds', why: 'conv weight gradient; absent from wasm' },
  { name: 'UnsortedSegmentSum', action: 'adds', why: 'gradient of tf.gather; absent from wasm' },
  { name: 'MaxPoolGrad', action: 'replaces', why: 'wasm drops the gradient of windows whose max is <= 0' },
  { name: 'MaxPoolWithArgmax', action: 'replaces', why: 'wasm returns 0 / index 0 for windows whose max is <= 0' },
  { name: 'GatherV2', action: 'replaces', why: 'wasm reads out of bounds when batchDims > 0' },
  { name: 'Conv2DBackpropInput', action: 'replaces', why: 'wasm uses a scalar loop (0.2 GFLOP/s); ours is an XNNPACK conv' },
  { name: 'BatchMatMul', action: 'replaces', why: 'wasm leaves transposed or batch-broadcast matmuls to a scalar loop' },
  { name: 'Identity', action: 'replaces', why: 'share the buffer instead of copying every tensor saved for backprop' },
  { name: 'DepthwiseConv2dNativeBackpropInput', action: 'adds', why: 'depthwise-conv input gradient (MobileNet backbones); absent from wasm' },
  { name: 'DepthwiseConv2dNativeBackpropFilter', action: 'adds', why: 'depthwise-conv weight gradient; absent from wasm' },
];

const ours = new Set<KernelFunc>();
/** the wasm backend's own configs of the kernels we wrap (captured before the first replacement) */
const stockConfigs = new Map<string, KernelConfig>();

function stock(name: string): KernelConfig {
  const current = tf.getKernel(name, 'wasm');
  if (!current) throw new Error(`tfjs-backend-wasm is not loaded (no '${name}' wasm kernel): import '@tensorflow/tfjs-backend-wasm' first`);
  if (!ours.has(current.kernelFunc)) stockConfigs.set(name, current);
  return stockConfigs.get(name) as KernelConfig;
}

function install(config: KernelConfig): void {
  const current = tf.getKernel(config.kernelName, config.backendName);
  if (current && ours.has(current.kernelFunc)) return;
  if (current && !stockConfigs.has(config.kernelName)) stockConfigs.set(config.kernelName, current);
  if (current) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
  ours.add(config.kernelFunc);
}

/** The wasm backend's own kernel that one of ours replaced (for benchmarks), if any. */
export function stockWasmKernel(name: string): KernelConfig | undefined {
  return stockConfigs.get(name);
}

export function registerWasmKernels(): string[] {
  const configs = [
    conv2DBackpropFilterWasmConfig, unsortedSegmentSumWasmConfig, maxPoolGradWasmConfig, maxPoolWithArgmaxWasmConfig,
    gatherV2WasmConfig(stock('GatherV2')), conv2DBackpropInputWasmConfig, batchMatMulWasmConfig(stock('BatchMatMul')), identityWasmConfig,
    depthwiseBackpropInputWasmConfig, depthwiseBackpropFilterWasmConfig,
  ];
  configs.forEach(install);
  return configs.map((c) => c.kernelName);
}

/**
 * (Re-)registers our gradients. Call it after anything that registers tfjs-core's own gradients (e.g. importing
 * tfjs-node, which imports the full @tensorflow/tfjs), since the last registration wins.
 */
export function registerExtraGradients(): string[] {
  const all = [...EXTRA_GRADIENTS, ...DEPTHWISE_GRADIENTS, fusedBatchNormGrad];
  for (const g of all) tf.registerGradient(g);
  return all.map((g) => g.kernelName);
}
