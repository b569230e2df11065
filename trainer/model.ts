import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../manifests/index.ts';
import {
  FINAL_GN, HEAD_BIAS, HEAD_KERNEL, modelFlops, parameterSpecs, planOf, type ConvPlan, type ModelConfig, type ParamSpec,
} from './model-config.ts';
import { globalAvgPool, groupNorm, maxPool3x3s2, standardizeKernel } from './model-ops.ts';

/**
 * BiT-style ResNetV2 (Kolesnikov et al. 2020) written with tfjs-core ops only.
 *
 * - Pre-activation residual units (GN → ReLU → conv), bottleneck or basic.
 * - GroupNorm everywhere instead of BatchNorm, so every image is normalised on its own: no batch statistics,
 *   no train/eval switch, and the gradient of Σ_b z_b w.r.t. the input splits exactly per image
 *   (losses.ts relies on that for the saliency penalty).
 * - Weight standardisation on every conv kernel, per output channel over [fh, fw, cin].
 * - Every op used has a tfjs-core gradient whose own gradient is also defined, so the forward pass supports
 *   double backprop (input-gradient penalties). That is why max-pool is composed from slices and `maximum`
 *   rather than tf.maxPool (whose gradient kernel MaxPoolGrad has no gradient).
 *
 * Parameter names follow BiT's released checkpoints (`resnet/block1/unit01/a/standardized_conv2d/kernel`, …), so a
 * BiT .npz (or timm's .safetensors, renamed on load) initialises it directly (weights/, docs/pretrained.md).
 *
 * This module: the forward pass (resnetForward) and createModel. The config, presets and parameter shapes are in
 * model-config.ts, the GroupNorm / weight-standardisation / pooling ops in model-ops.ts; both are re-exported here.
 */

export {
  modelFlops, parameterSpecs, presetConfig, PRESETS, validateConfig, type ModelConfig, type ParamSpec, type PresetName,
} from './model-config.ts';
export { effectiveGroups, globalAvgPool, groupNorm, maxPool3x3s2, standardizeKernel } from './model-ops.ts';

/** A built model: its tfjs variables (BiT-named) and the forward pass over them. */
export interface Model {
  config: ModelConfig;
  /** trainable parameters, in `paramNames` order */
  variables: tf.Variable[];
  /** checkpoint name of each variable (BiT naming), parallel to `variables` */
  paramNames: string[];
  /** logits for NHWC input in [-1, 1]; a pure function of (variables, x) */
  apply(x: tf.Tensor4D): tf.Tensor2D;
  /** forward FLOPs per image (2 × multiply-adds of convs and head; GN/ReLU/pool not counted) */
  flops(inputSize: number): number;
  dispose(): void;
}

export type Params = Record<string, tf.Tensor>;

/**
 * The forward pass as a pure function of (config, params, x). `x` is NHWC in [-1, 1]; returns logits [B, K].
 * Convs use symmetric padding (k−1)/2 like BiT's PyTorch release (not TF 'same', which pads more at the end).
 */
export function resnetForward(config: ModelConfig, params: Params, x: tf.Tensor4D): tf.Tensor2D {
  const plan = planOf(config);
  const wsEps = config.wsEps ?? 1e-10;
  const gnEps = config.gnEps ?? 1e-5;
  const get = (name: string): tf.Tensor => {
    const t = params[name];
    if (!t) throw new Error(`missing parameter ${name}`);
    return t;
  };
  const conv = (h: tf.Tensor4D, cv: ConvPlan): tf.Tensor4D =>
    tf.conv2d(h, standardizeKernel(get(cv.kernel) as tf.Tensor4D, wsEps), cv.stride, (cv.k - 1) / 2);
  const gnRelu = (h: tf.Tensor4D, prefix: string): tf.Tensor4D =>
    tf.relu(groupNorm(h, get(`${prefix}/gamma`), get(`${prefix}/beta`), config.groups, gnEps));

  let h = conv(x, plan.root);
  if (config.rootPool) h = maxPool3x3s2(h);
  for (const u of plan.units) {
    const pre = gnRelu(h, `${u.prefix}a/group_norm`);
    const shortcut = u.proj ? conv(pre, u.proj) : h;
    let r = conv(pre, u.convs[0]);
    for (let i = 1; i < u.convs.length; i++) r = conv(gnRelu(r, `${u.prefix}${u.norms[i].name}/group_norm`), u.convs[i]);
    h = tf.add(r, shortcut);
  }
  h = gnRelu(h, FINAL_GN);
  const pooled = globalAvgPool(h);
  const kernel = tf.reshape(get(HEAD_KERNEL), [plan.finalChannels, config.numClasses]) as tf.Tensor2D;
  return tf.add(tf.matMul(pooled, kernel), get(HEAD_BIAS)) as tf.Tensor2D;
}

/**
 * tfjs keeps one global registry of variable names. The first live model uses the parameter names themselves
 * (so optimizer state keyed by variable name is the same in every process); a model created while another is
 * alive gets '#2', '#3', … appended.
 */
function freeVariableSuffix(names: string[]): string {
  const taken = tf.engine().registeredVariables;
  for (let k = 1; ; k++) {
    const suffix = k === 1 ? '' : `#${k}`;
    if (names.every((n) => taken[n + suffix] === undefined)) return suffix;
  }
}

export interface CreateModelOptions {
  /** zero-initialise the head (BiT); default true. False draws it He-normal (useful for tests of gradients). */
  zeroHead?: boolean;
}

/** Seeded He-normal values for one parameter; the stream depends on (seed, name) only. */
export function initialValues(spec: ParamSpec, seed: number, zeroHead = true): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  const isHead = spec.name === HEAD_KERNEL;
  if (spec.init === 'ones') v.fill(1);
  else if (spec.init === 'he' || (isHead && !zeroHead)) {
    const rng = rngFor('cfgen-model-init', seed, spec.name);
    const std = Math.sqrt(2 / spec.fanIn);
    for (let i = 0; i < n; i++) v[i] = rng.normal() * std;
  }
  return v;
}

/** Builds a model of `config` with seeded initial weights (initialValues) as tfjs variables. */
export function createModel(config: ModelConfig, seed: number, opts: CreateModelOptions = {}): Model {
  const specs = parameterSpecs(config);
  const paramNames = specs.map((s) => s.name);
  const suffix = freeVariableSuffix(paramNames);
  const variables = specs.map((s) => {
    const init = tf.tensor(initialValues(s, seed, opts.zeroHead ?? true), s.shape, 'float32');
    const v = tf.variable(init, true, s.name + suffix);
    init.dispose();
    return v;
  });
  const params: Params = {};
  specs.forEach((s, i) => { params[s.name] = variables[i]; });
  const cfg: ModelConfig = { ...config, widths: [...config.widths], depths: [...config.depths] };
  return {
    config: cfg,
    variables,
    paramNames,
    apply: (x) => tf.tidy(() => resnetForward(cfg, params, x)),
    flops: (inputSize) => modelFlops(cfg, inputSize),
    dispose: () => { for (const v of variables) v.dispose(); },
  };
}
