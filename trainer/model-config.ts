/**
 * The model's configuration and its static shape (trainer/model.ts builds and runs it): ModelConfig, the presets,
 * the layer plan with BiT's parameter names, every parameter's shape and init rule, and the forward FLOPs.
 * Plain numbers only (no tfjs), so checkpoints, run state and the parallel step's weight layout can read a model's
 * shape without building one.
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
  /** weight-standardisation epsilon added to the variance (default 1e-10, as BiT; timm's BiT weights: 1e-8) */
  wsEps?: number;
  /**
   * A tfjs LayersModel used as the feature extractor instead of the ResNetV2 (trainer/backbone/); the ResNet
   * fields above are then unused placeholders (model-build.ts builds the right kind).
   */
  backbone?: BackboneSpec;
}

/** Where a LayersModel backbone lives and how it is cut and fed (trainer/backbone/card.ts for the card). */
export interface BackboneSpec {
  /** absolute path of the folder with model.json, its shards and card.json */
  dir: string;
  /** the layer whose output is used (a rank-4 map is average-pooled) */
  cut: string;
  /** feature channels at the cut: the head is [features, numClasses] */
  features: number;
  card: { inputSize: number | null; range: [number, number]; mean: [number, number, number]; std: [number, number, number]; channelOrder: 'RGB' | 'BGR'; cut?: string };
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

/** Preset plus class count. */
export function presetConfig(preset: PresetName, numClasses: number): ModelConfig {
  const p = PRESETS[preset];
  if (!p) throw new Error(`unknown model preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  return { ...p, widths: [...p.widths], depths: [...p.depths], numClasses };
}

export interface ParamSpec {
  name: string;
  shape: number[];
  init: 'he' | 'ones' | 'zeros';
  /** fan-in for He-normal init */
  fanIn: number;
}

/** One conv of the layer plan: its kernel's parameter name, size k×k, channels and stride. */
export interface ConvPlan { kernel: string; k: number; cin: number; cout: number; stride: number }
/** One pre-activation residual unit: its name prefix, GroupNorms, convs and (on a shape change) projection. */
export interface UnitPlan {
  prefix: string; cin: number; cout: number; stride: number;
  /** GN layers in order a, b[, c] with their channel counts */
  norms: { name: string; channels: number }[];
  convs: ConvPlan[];
  proj: ConvPlan | null;
}
/** The whole network: root conv, residual units in order, and the channels the head sees. */
export interface Plan { root: ConvPlan; units: UnitPlan[]; finalChannels: number }

// Checkpoint names (BiT's) of the parameters outside the residual units; model.ts's forward pass reads them too.
const ROOT = 'resnet/root_block/standardized_conv2d/kernel';
export const FINAL_GN = 'resnet/group_norm';
export const HEAD_KERNEL = 'resnet/head/conv2d/kernel';
export const HEAD_BIAS = 'resnet/head/conv2d/bias';

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

export function validateConfig(c: ModelConfig): void {
  const bad = (m: string): never => { throw new Error(`model config '${c.name}': ${m}`); };
  if (c.backbone) {
    if (!(c.numClasses >= 2)) bad('numClasses must be ≥ 2');
    if (!c.backbone.dir || !c.backbone.cut || !(c.backbone.features >= 1)) bad('backbone needs dir, cut and features');
    return;
  }
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

/** The layer plan of a config (validated first): every conv, GroupNorm and projection with its parameter names. */
export function planOf(c: ModelConfig): Plan {
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
