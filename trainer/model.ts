import * as tf from '@tensorflow/tfjs-core';
import { rngFor } from '../manifests/index.ts';

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
 * BiT .npz converted to our checkpoint format loads by name (docs/model-and-losses.md).
 */

export interface ModelConfig {
  name: string;
  /** channels of the root conv */
  rootWidth: number;
  /** output channels of each stage (bottleneck: mid = width / 4) */
  widths: number[];
  /** residual units per stage */
  depths: number[];
  bottleneck: boolean;
  /** GroupNorm groups, clipped to the largest divisor of the channel count that is ≤ groups */
  groups: number;
  numClasses: number;
  /** zero-pad 1 then 3×3 stride-2 max-pool after the root conv (BiT) */
  rootPool: boolean;
  /** root conv kernel size (default 7, BiT) */
  rootKernel?: number;
  /** root conv stride (default 2, BiT) */
  rootStride?: number;
  /** stride of each stage's first unit (default 1 for the first stage, 2 for the others) */
  strides?: number[];
  /** GroupNorm epsilon (default 1e-5) */
  gnEps?: number;
  /** weight-standardisation epsilon added to the variance (default 1e-10, as BiT) */
  wsEps?: number;
}

export type PresetName = 'tiny' | 'small' | 'r50x1';

export const PRESETS: Record<PresetName, Omit<ModelConfig, 'numClasses'>> = {
  /** for tests: two stages, 8/16 channels */
  tiny: {
    name: 'tiny', rootWidth: 8, widths: [8, 16], depths: [1, 1], bottleneck: false, groups: 4,
    rootPool: false, rootKernel: 3, rootStride: 1,
  },
  /** CPU default at 64 px: 64 → 32 (root) → 32/16/8 (stages), ~13 M multiply-adds per image */
  small: {
    name: 'small', rootWidth: 16, widths: [16, 32, 64], depths: [1, 1, 1], bottleneck: false, groups: 8,
    rootPool: false, rootKernel: 3, rootStride: 2,
  },
  /** BiT-S R50x1 (the paper's model) */
  r50x1: {
    name: 'r50x1', rootWidth: 64, widths: [256, 512, 1024, 2048], depths: [3, 4, 6, 3], bottleneck: true, groups: 32,
    rootPool: true, rootKernel: 7, rootStride: 2,
  },
};

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

export interface ParamSpec {
  name: string;
  shape: number[];
  init: 'he' | 'ones' | 'zeros';
  /** fan-in for He-normal init */
  fanIn: number;
}

interface ConvPlan { kernel: string; k: number; cin: number; cout: number; stride: number }
interface UnitPlan {
  prefix: string; cin: number; cout: number; stride: number;
  /** GN layers in order a, b[, c] with their channel counts */
  norms: { name: string; channels: number }[];
  convs: ConvPlan[];
  proj: ConvPlan | null;
}
interface Plan { root: ConvPlan; units: UnitPlan[]; finalChannels: number }

const ROOT = 'resnet/root_block/standardized_conv2d/kernel';
const FINAL_GN = 'resnet/group_norm';
const HEAD_KERNEL = 'resnet/head/conv2d/kernel';
const HEAD_BIAS = 'resnet/head/conv2d/bias';

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

export function validateConfig(c: ModelConfig): void {
  const bad = (m: string): never => { throw new Error(`model config '${c.name}': ${m}`); };
  if (c.widths.length === 0 || c.widths.length !== c.depths.length) bad('widths and depths must be non-empty and of equal length');
  if (c.strides && c.strides.length !== c.widths.length) bad('strides must have one entry per stage');
  if (!(c.numClasses >= 2)) bad('numClasses must be ≥ 2');
  if (!(c.groups >= 1)) bad('groups must be ≥ 1');
  for (const w of [c.rootWidth, ...c.widths]) if (!Number.isInteger(w) || w < 1) bad(`bad width ${w}`);
  if (c.bottleneck) for (const w of c.widths) if (w % 4 !== 0) bad(`bottleneck width ${w} is not a multiple of 4`);
  for (const d of c.depths) if (!Number.isInteger(d) || d < 1) bad(`bad depth ${d}`);
  const k = c.rootKernel ?? 7;
  if (k % 2 !== 1) bad('rootKernel must be odd');
}

function planOf(c: ModelConfig): Plan {
  validateConfig(c);
  const root: ConvPlan = { kernel: ROOT, k: c.rootKernel ?? 7, cin: 3, cout: c.rootWidth, stride: c.rootStride ?? 2 };
  const units: UnitPlan[] = [];
  let cin = c.rootWidth;
  c.widths.forEach((cout, s) => {
    const stageStride = c.strides ? c.strides[s] : s === 0 ? 1 : 2;
    for (let u = 0; u < c.depths[s]; u++) {
      const prefix = `resnet/block${s + 1}/unit${pad2(u + 1)}/`;
      const stride = u === 0 ? stageStride : 1;
      const conv = (part: string, k: number, ci: number, co: number, st: number): ConvPlan =>
        ({ kernel: `${prefix}${part}/standardized_conv2d/kernel`, k, cin: ci, cout: co, stride: st });
      const proj = stride !== 1 || cin !== cout ? conv('a/proj', 1, cin, cout, stride) : null;
      if (c.bottleneck) {
        const mid = cout / 4;
        units.push({
          prefix, cin, cout, stride, proj,
          norms: [{ name: 'a', channels: cin }, { name: 'b', channels: mid }, { name: 'c', channels: mid }],
          convs: [conv('a', 1, cin, mid, 1), conv('b', 3, mid, mid, stride), conv('c', 1, mid, cout, 1)],
        });
      } else {
        units.push({
          prefix, cin, cout, stride, proj,
          norms: [{ name: 'a', channels: cin }, { name: 'b', channels: cout }],
          convs: [conv('a', 3, cin, cout, stride), conv('b', 3, cout, cout, 1)],
        });
      }
      cin = cout;
    }
  });
  return { root, units, finalChannels: cin };
}

/** Every parameter of the model, in a fixed order, with its init rule. */
export function parameterSpecs(c: ModelConfig): ParamSpec[] {
  const p = planOf(c);
  const out: ParamSpec[] = [];
  const conv = (cv: ConvPlan): void => {
    out.push({ name: cv.kernel, shape: [cv.k, cv.k, cv.cin, cv.cout], init: 'he', fanIn: cv.k * cv.k * cv.cin });
  };
  const gn = (prefix: string, ch: number): void => {
    out.push({ name: `${prefix}/gamma`, shape: [ch], init: 'ones', fanIn: 0 });
    out.push({ name: `${prefix}/beta`, shape: [ch], init: 'zeros', fanIn: 0 });
  };
  conv(p.root);
  for (const u of p.units) {
    u.norms.forEach((n, i) => {
      gn(`${u.prefix}${n.name}/group_norm`, n.channels);
      conv(u.convs[i]);
    });
    if (u.proj) conv(u.proj);
  }
  gn(FINAL_GN, p.finalChannels);
  // Head stored as a 1×1 conv kernel [1,1,C,K], like BiT's checkpoints, so converted weights load unchanged.
  out.push({ name: HEAD_KERNEL, shape: [1, 1, p.finalChannels, c.numClasses], init: 'zeros', fanIn: p.finalChannels });
  out.push({ name: HEAD_BIAS, shape: [c.numClasses], init: 'zeros', fanIn: 0 });
  return out;
}

/** Largest divisor of `channels` that is ≤ `groups`. */
export function effectiveGroups(channels: number, groups: number): number {
  let g = Math.max(1, Math.min(groups, channels));
  while (channels % g !== 0) g--;
  return g;
}

/*
 * Reductions and broadcasts below are written as matMuls with constant ones / 0-1 matrices. Why: the cpu
 * backend reduces over a non-trailing axis through an element-by-element transpose, and broadcasts a tensor with
 * size-1 dims through a per-element index computation; the gradient of every broadcasting op is such a reduction.
 * With tf.moments, GroupNorm cost more than the convolutions. matMul and its gradients (matMuls again) avoid
 * both slow paths on every backend and stay differentiable to any order.
 */

/** [B, n, C] → [B, C]: sums over the middle axis */
function sumOverMiddle(x: tf.Tensor3D): tf.Tensor2D {
  const [b, n, c] = x.shape;
  // full-batch ones: a batch-broadcast matMul is 4× slower on wasm
  return tf.reshape(tf.matMul(tf.ones([b, 1, n]) as tf.Tensor3D, x), [b, c]) as tf.Tensor2D;
}

/** [B, C] → [B, n, C]: each row repeated n times */
function repeatOverMiddle(v: tf.Tensor2D, n: number): tf.Tensor3D {
  const [b, c] = v.shape;
  return tf.matMul(tf.ones([1, n, 1]) as tf.Tensor3D, tf.reshape(v, [b, 1, c]) as tf.Tensor3D);
}

/** [C, G] 0/1 matrix: channel c belongs to group ⌊c / (C/G)⌋ */
function groupMatrix(c: number, g: number): tf.Tensor2D {
  const m = new Float32Array(c * g);
  const cg = c / g;
  for (let i = 0; i < c; i++) m[i * g + Math.floor(i / cg)] = 1;
  return tf.tensor2d(m, [c, g]);
}

/** Global average pool [B, H, W, C] → [B, C]. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  const [b, h, w, c] = x.shape;
  return tf.div(sumOverMiddle(tf.reshape(x, [b, h * w, c]) as tf.Tensor3D), h * w) as tf.Tensor2D;
}

/** GroupNorm over (H, W, channels-in-group) per image (two-pass variance), then per-channel affine. */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps = 1e-5): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const g = effectiveGroups(c, groups);
  const n = h * w;
  const e = groupMatrix(c, g);
  // per-channel sums [B, C] → per-group means [B, G] → back to per-channel [B, C]
  const groupMeanPerChannel = (sums: tf.Tensor2D): tf.Tensor2D =>
    tf.matMul(tf.div(tf.matMul(sums, e), n * (c / g)), e, false, true);
  const x3 = tf.reshape(x, [b, n, c]);
  const mean = groupMeanPerChannel(sumOverMiddle(x3 as tf.Tensor3D));
  const xc = tf.sub(x3, repeatOverMiddle(mean, n));
  const variance = groupMeanPerChannel(sumOverMiddle(tf.square(xc) as tf.Tensor3D));
  const scale = tf.mul(tf.rsqrt(tf.add(variance, eps)), gamma) as tf.Tensor2D;
  const shift = tf.add(tf.zeros([b, c]), beta) as tf.Tensor2D;
  const y = tf.add(tf.mul(xc, repeatOverMiddle(scale, n)), repeatOverMiddle(shift, n));
  return tf.reshape(y, [b, h, w, c]) as tf.Tensor4D;
}

/** (w − mean) / sqrt(var + eps) per output channel over [fh, fw, cin] (biased variance, as BiT). */
export function standardizeKernel(w: tf.Tensor4D, eps = 1e-10): tf.Tensor4D {
  const [kh, kw, ci, co] = w.shape;
  const n = kh * kw * ci;
  const w2 = tf.reshape(w, [n, co]);
  const colMean = (m: tf.Tensor2D): tf.Tensor2D => tf.div(tf.matMul(tf.ones([1, n]), m), n);
  const spread = (row: tf.Tensor2D): tf.Tensor2D => tf.matMul(tf.ones([n, 1]), row);
  const wc = tf.sub(w2, spread(colMean(w2 as tf.Tensor2D))) as tf.Tensor2D;
  const inv = tf.rsqrt(tf.add(colMean(tf.square(wc) as tf.Tensor2D), eps)) as tf.Tensor2D;
  return tf.reshape(tf.mul(wc, spread(inv)), [kh, kw, ci, co]) as tf.Tensor4D;
}

/**
 * Zero-pad 1, then 3×3 stride-2 'valid' max-pool (BiT's root pool), built from slice/maximum/reshape so that
 * its gradient is itself differentiable.
 */
export function maxPool3x3s2(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]);
  const oh = Math.floor((h - 1) / 2) + 1;
  const ow = Math.floor((w - 1) / 2) + 1;
  // Window maxima at stride 1 for the 2·o−1 positions we need, then keep every other one.
  const lh = 2 * oh - 1, lw = 2 * ow - 1;
  let rows: tf.Tensor4D | null = null;
  for (let d = 0; d < 3; d++) {
    const s = tf.slice(xp, [0, d, 0, 0], [b, lh, w + 2, c]);
    rows = rows ? (tf.maximum(rows, s) as tf.Tensor4D) : s;
  }
  let m: tf.Tensor4D | null = null;
  for (let d = 0; d < 3; d++) {
    const s = tf.slice(rows!, [0, 0, d, 0], [b, lh, lw, c]);
    m = m ? (tf.maximum(m, s) as tf.Tensor4D) : s;
  }
  const even = tf.reshape(tf.pad(m!, [[0, 0], [0, 1], [0, 1], [0, 0]]), [b, oh, 2, ow, 2, c]);
  return tf.reshape(tf.slice(even, [0, 0, 0, 0, 0, 0], [b, oh, 1, ow, 1, c]), [b, oh, ow, c]) as tf.Tensor4D;
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

/** Forward FLOPs per image: 2 × (conv + head multiply-adds). */
export function modelFlops(config: ModelConfig, inputSize: number): number {
  const plan = planOf(config);
  const out = (n: number, st: number): number => Math.floor((n - 1) / st) + 1;
  let total = 0;
  const convAt = (n: number, cv: ConvPlan): number => {
    const o = out(n, cv.stride);
    total += 2 * o * o * cv.k * cv.k * cv.cin * cv.cout;
    return o;
  };
  let n = convAt(inputSize, plan.root);
  if (config.rootPool) n = Math.floor((n - 1) / 2) + 1;
  for (const u of plan.units) {
    let m = n;
    for (const cv of u.convs) m = convAt(m, cv);
    if (u.proj) convAt(n, u.proj);
    n = m;
  }
  total += 2 * plan.finalChannels * config.numClasses;
  return total;
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

/** Preset plus class count. */
export function presetConfig(preset: PresetName, numClasses: number): ModelConfig {
  const p = PRESETS[preset];
  if (!p) throw new Error(`unknown model preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  return { ...p, widths: [...p.widths], depths: [...p.depths], numClasses };
}
