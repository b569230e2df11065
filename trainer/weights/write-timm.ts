import type { NamedArray } from './write-npz.ts';

/**
 * Our (BiT) parameter names and layouts → timm's ResNetV2 (`resnetv2_*_bit`): the inverse of bit-names.ts's
 * timmNameToBit, pair for pair (timm/models/resnetv2.py `_load_weights` pairs them the same way):
 * root → `stem.conv.weight`, `block{s}/unit{u}/{a,b,c}` → `stages.{s-1}.blocks.{u-1}.{norm,conv}{1,2,3}`,
 * `a/proj` → `downsample.conv`, the final GN → `norm`, the head → `head.fc`. Kernels go HWIO → OIHW, so the
 * [1, 1, C, K] head becomes timm's [K, C, 1, 1] 1×1 conv.
 */

const PART_INDEX: Record<string, number> = { a: 1, b: 2, c: 3 };
const FIXED: Record<string, string> = {
  'resnet/root_block/standardized_conv2d/kernel': 'stem.conv.weight',
  'resnet/group_norm/gamma': 'norm.weight',
  'resnet/group_norm/beta': 'norm.bias',
  'resnet/head/conv2d/kernel': 'head.fc.weight',
  'resnet/head/conv2d/bias': 'head.fc.bias',
};

/** BiT name → timm name, or null for a name outside BiT's ResNetV2. */
export function bitNameToTimm(name: string): string | null {
  if (FIXED[name]) return FIXED[name];
  const m = /^resnet\/block(\d+)\/unit(\d+)\/(.+)$/.exec(name);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) return null;
  const pre = `stages.${Number(m[1]) - 1}.blocks.${Number(m[2]) - 1}.`;
  if (m[3] === 'a/proj/standardized_conv2d/kernel') return `${pre}downsample.conv.weight`;
  const g = /^([abc])\/group_norm\/(gamma|beta)$/.exec(m[3]);
  if (g) return `${pre}norm${PART_INDEX[g[1]]}.${g[2] === 'gamma' ? 'weight' : 'bias'}`;
  const c = /^([abc])\/standardized_conv2d\/kernel$/.exec(m[3]);
  return c ? `${pre}conv${PART_INDEX[c[1]]}.weight` : null;
}

/** TF HWIO → PyTorch OIHW (out[o, i, h, w] = in[h, w, i, o]). */
export function hwioToOihw(values: Float32Array, shape: number[]): { values: Float32Array; shape: number[] } {
  const [h, w, i, o] = shape;
  const out = new Float32Array(values.length);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let b = 0; b < i; b++) for (let a = 0; a < o; a++) {
    out[((a * i + b) * h + y) * w + x] = values[((y * w + x) * i + b) * o + a];
  }
  return { values: out, shape: [o, i, h, w] };
}

/** Our weights as timm's tensors: renamed, 4-D kernels transposed. Throws naming a weight timm has no name for. */
export function toTimmArrays(weights: NamedArray[]): NamedArray[] {
  return weights.map((a) => {
    const name = bitNameToTimm(a.name);
    if (name === null) throw new Error(`${a.name} has no timm ResNetV2 name`);
    return a.shape.length === 4 ? { name, ...hwioToOihw(a.values, a.shape) } : { name, shape: a.shape, values: a.values };
  });
}
