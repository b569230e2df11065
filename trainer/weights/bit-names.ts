import type { ModelConfig } from '../model-config.ts';

/**
 * The two published namings of BiT's ResNetV2 and how they map onto ours (which is BiT's own, model-config.ts):
 *
 * - Google's BiT release (`BiT-{S,M}-R{50,101,152}x{1,2,3,4}.npz`): TF names and layouts, e.g.
 *   `resnet/block1/unit01/a/standardized_conv2d/kernel` [fh, fw, cin, cout] — ours exactly.
 * - timm (`resnetv2_50x1_bit.goog_in21k` etc., `model.safetensors` on Hugging Face): PyTorch names and OIHW
 *   kernels: `stem.conv.weight`, `stages.0.blocks.0.norm1.weight`, `stages.0.blocks.0.conv1.weight`,
 *   `stages.0.blocks.0.downsample.conv.weight`, `norm.weight`, `head.fc.weight` [K, C, 1, 1].
 *   timm's own npz loader (`_load_weights` in timm/models/resnetv2.py) pairs them the same way.
 */

/** A tensor in our naming and layout, and the name it had in the file (for messages). */
export interface NamedWeight { name: string; fileName: string; shape: number[]; values: Float32Array }

const UNIT_PART: Record<string, string> = { 1: 'a', 2: 'b', 3: 'c' };
const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** timm name → BiT name, or null for a name timm's ResNetV2 does not have. */
export function timmNameToBit(name: string): string | null {
  if (name === 'stem.conv.weight') return 'resnet/root_block/standardized_conv2d/kernel';
  if (name === 'norm.weight') return 'resnet/group_norm/gamma';
  if (name === 'norm.bias') return 'resnet/group_norm/beta';
  if (name === 'head.fc.weight') return 'resnet/head/conv2d/kernel';
  if (name === 'head.fc.bias') return 'resnet/head/conv2d/bias';
  const m = /^stages\.(\d+)\.blocks\.(\d+)\.(.+)$/.exec(name);
  if (!m) return null;
  const unit = `resnet/block${Number(m[1]) + 1}/unit${pad2(Number(m[2]) + 1)}/`;
  const rest = m[3];
  if (rest === 'downsample.conv.weight') return `${unit}a/proj/standardized_conv2d/kernel`;
  let r = /^norm([123])\.(weight|bias)$/.exec(rest);
  if (r) return `${unit}${UNIT_PART[r[1]]}/group_norm/${r[2] === 'weight' ? 'gamma' : 'beta'}`;
  r = /^conv([123])\.weight$/.exec(rest);
  if (r) return `${unit}${UNIT_PART[r[1]]}/standardized_conv2d/kernel`;
  return null;
}

/** PyTorch OIHW → TF HWIO (out[h, w, i, o] = in[o, i, h, w]). */
export function oihwToHwio(values: Float32Array, shape: number[]): { values: Float32Array; shape: number[] } {
  const [o, i, h, w] = shape;
  if (values.length === 0) return { values, shape: [h, w, i, o] }; // shapes-only read
  const out = new Float32Array(values.length);
  for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    out[((y * w + x) * i + b) * o + a] = values[((a * i + b) * h + y) * w + x];
  }
  return { values: out, shape: [h, w, i, o] };
}

/**
 * A timm tensor in our naming and layout: 4-D kernels transposed OIHW → HWIO; a Linear head [K, C] becomes
 * [1, 1, C, K]. Null for a name we do not know (the caller reports it).
 */
export function timmToOurs(fileName: string, shape: number[], values: Float32Array): NamedWeight | null {
  const name = timmNameToBit(fileName);
  if (name === null) return null;
  if (shape.length === 4) return { name, fileName, ...oihwToHwio(values, shape) };
  if (name.endsWith('head/conv2d/kernel') && shape.length === 2) {
    const t = oihwToHwio(values, [shape[0], shape[1], 1, 1]);
    return { name, fileName, ...t };
  }
  return { name, fileName, shape, values };
}

/** What the file says about the network: everything of a ModelConfig but the class count, plus the head's. */
export interface FileArchitecture { config: Omit<ModelConfig, 'numClasses'>; headClasses: number | null }

/**
 * The architecture a set of BiT-named shapes describes: root kernel size and width, stages and units per stage
 * from the `block{s}/unit{uu}` names, bottleneck when units have a `c` conv, each stage's width from its first
 * unit's last conv, the head's class count from its kernel. BiT's fixed choices (root stride 2 with the padded
 * max-pool, stage strides 1, 2, 2, 2, 32 GroupNorm groups) are not in the weights and are assumed. Throws an
 * Error naming what is missing; the caller adds the file.
 */
export function inferArchitecture(shapes: Map<string, number[]>, eps: { wsEps: number; gnEps: number }): FileArchitecture {
  const need = (name: string, rank: number): number[] => {
    const s = shapes.get(name);
    if (!s) throw new Error(`tensor ${name} is missing: every BiT ResNetV2 has it`);
    if (s.length !== rank) throw new Error(`tensor ${name} has shape [${s.join(', ')}], expected ${rank} dimensions`);
    return s;
  };
  const root = need('resnet/root_block/standardized_conv2d/kernel', 4);
  if (root[0] !== root[1] || root[0] % 2 !== 1 || root[2] !== 3) {
    throw new Error(`tensor resnet/root_block/standardized_conv2d/kernel has shape [${root.join(', ')}], expected [k, k, 3, width] with odd k`);
  }
  const units = new Map<number, number>();
  for (const n of shapes.keys()) {
    const m = /^resnet\/block(\d+)\/unit(\d+)\//.exec(n);
    if (m) units.set(Number(m[1]), Math.max(units.get(Number(m[1])) ?? 0, Number(m[2])));
  }
  const stages = units.size;
  if (stages === 0) throw new Error('no resnet/block*/unit* tensors: not a BiT ResNetV2');
  for (let s = 1; s <= stages; s++) if (!units.has(s)) throw new Error(`stages are not numbered 1..${stages}: resnet/block${s} is missing`);
  const depths = Array.from({ length: stages }, (_, s) => units.get(s + 1)!);
  const bottleneck = shapes.has('resnet/block1/unit01/c/standardized_conv2d/kernel');
  const last = bottleneck ? 'c' : 'b';
  const widths = depths.map((_, s) => need(`resnet/block${s + 1}/unit01/${last}/standardized_conv2d/kernel`, 4)[3]);
  const head = shapes.get('resnet/head/conv2d/kernel');
  const headClasses = head ? head[head.length - 1] : null;
  const layers = (bottleneck ? 3 : 2) * depths.reduce((a, b) => a + b, 0) + 2;
  const wf = root[3] / 64;
  const bitWidths = stages === 4 && bottleneck && widths.every((w, s) => w === 256 * wf * 2 ** s);
  const name = bitWidths && Number.isInteger(wf) ? `r${layers}x${wf}` : `resnetv2-${layers}`;
  return {
    config: {
      name, rootWidth: root[3], widths, depths, bottleneck, groups: 32, rootPool: true, rootKernel: root[0], rootStride: 2,
      wsEps: eps.wsEps, gnEps: eps.gnEps,
    },
    headClasses,
  };
}
