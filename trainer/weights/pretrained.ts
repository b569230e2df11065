import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../manifests/errors.ts';
import { parameterSpecs, HEAD_BIAS, HEAD_KERNEL, type ModelConfig } from '../model-config.ts';
import { inferArchitecture, timmToOurs, type FileArchitecture, type NamedWeight } from './bit-names.ts';
import { applyModelMeta, metadataFromComment } from './cfgen-meta.ts';
import { readNpzFile } from './npz.ts';
import { readSafetensorsFile } from './safetensors.ts';

/**
 * Pretrained weights read straight from the files users download (docs/pretrained.md): Google's BiT `.npz` and
 * timm's `model.safetensors`. The file decides the architecture (width, depth); the head is kept when its class
 * count is the run's, else replaced by a fresh zero head. Anything unknown, missing or mis-shaped is a UserError
 * naming the tensor, the file and what was expected, raised before a single variable is assigned.
 *
 * Weight-standardisation ε (added to the variance): BiT's release uses 1e-10 (bit_pytorch/models.py StdConv2d,
 * bit_tf2 StandardizedConv2D), timm's BiT models 1e-8 (`partial(StdConv2d, eps=1e-8)` in resnetv2.py); GroupNorm
 * ε is 1e-5 in both. Padding: both pad convs symmetrically by (k−1)/2 and the root pool by a zero pad of 1 then a
 * 'valid' 3×3/2 max-pool (timm's stem_type 'fixed'), which is what our model does.
 *
 * Files written by `cfgen export-weights` (export.ts) also carry our model config in metadata (cfgen-meta.ts); it
 * replaces the assumptions above, checked against the tensors, so any of our presets round-trips.
 */

export type PretrainedFormat = 'bit-npz' | 'timm-safetensors';

/** A pretrained file, read: its weights in our naming and layout, and the architecture they describe. */
export interface Pretrained extends FileArchitecture {
  file: string;
  format: PretrainedFormat;
  weights: Map<string, NamedWeight>;
}

const EPS: Record<PretrainedFormat, { wsEps: number; gnEps: number }> = {
  'bit-npz': { wsEps: 1e-10, gnEps: 1e-5 },
  'timm-safetensors': { wsEps: 1e-8, gnEps: 1e-5 },
};

/** The weights file `--init` names, or null when it names a checkpoint / tfjs folder (model.json). */
export function pretrainedFileOf(init: string): { file: string; format: PretrainedFormat } | null {
  if (existsSync(init) && statSync(init).isDirectory()) {
    if (existsSync(join(init, 'model.json'))) return null;
    // a Hugging Face snapshot folder (timm/resnetv2_50x1_bit.goog_in21k) holds model.safetensors + config.json
    if (existsSync(join(init, 'model.safetensors'))) return { file: join(init, 'model.safetensors'), format: 'timm-safetensors' };
    return null;
  }
  if (/\.npz$/i.test(init)) return { file: init, format: 'bit-npz' };
  if (/\.safetensors$/i.test(init)) return { file: init, format: 'timm-safetensors' };
  return null;
}

/**
 * Read a BiT .npz or a timm .safetensors into our naming and layout, and infer its architecture. `shapesOnly`:
 * names, shapes and architecture without the values (each weight's `values` is empty), for the run's config.
 */
export async function readPretrained(file: string, format: PretrainedFormat, opts: { shapesOnly?: boolean } = {}): Promise<Pretrained> {
  const weights = new Map<string, NamedWeight>();
  const unknown: string[] = [];
  const add = (w: NamedWeight): void => {
    const prev = weights.get(w.name);
    if (prev) throw new UserError(`tensors ${prev.fileName} and ${w.fileName} both map to ${w.name}`, { file, fix: 'the file mixes two namings; download it again' });
    weights.set(w.name, w);
  };
  let metadata: Record<string, string> | null = null;
  if (format === 'bit-npz') {
    const { arrays, comment } = await readNpzFile(file, { headersOnly: opts.shapesOnly });
    metadata = metadataFromComment(comment);
    for (const [name, a] of arrays) {
      if (!/^resnet\//.test(name)) { unknown.push(`${name} [${a.shape.join(', ')}]`); continue; }
      add({ name, fileName: name, shape: a.shape, values: a.values });
    }
  } else {
    const { tensors, metadata: m } = await readSafetensorsFile(file, { headersOnly: opts.shapesOnly });
    metadata = m;
    for (const [name, t] of tensors) {
      const w = timmToOurs(name, t.shape, t.values);
      if (w === null) unknown.push(`${name} [${t.shape.join(', ')}]`);
      else add(w);
    }
  }
  const fixFor = format === 'bit-npz'
    ? 'use a BiT ResNetV2 .npz from Google\'s release (BiT-S/BiT-M R50x1 … R152x4; docs/pretrained.md)'
    : 'use a timm resnetv2_*_bit model.safetensors (docs/pretrained.md)';
  if (unknown.length) {
    throw new UserError(`${unknown.length} tensor(s) are not part of a BiT ResNetV2: ${unknown.slice(0, 8).join('; ')}${unknown.length > 8 ? ` … and ${unknown.length - 8} more` : ''}`, { file, fix: fixFor });
  }
  let arch: FileArchitecture;
  try {
    // a file we exported records the config the tensors cannot tell (root pool, groups, ε): cfgen-meta.ts
    arch = applyModelMeta(inferArchitecture(new Map([...weights].map(([n, w]) => [n, w.shape])), EPS[format]), metadata);
  } catch (e) {
    throw new UserError((e as Error).message, { file, fix: fixFor });
  }
  return { file, format, weights, ...arch };
}

/** The run's model config: the file's architecture with the run's class count. */
export function pretrainedConfig(p: Pretrained, numClasses: number): ModelConfig {
  return { ...p.config, widths: [...p.config.widths], depths: [...p.config.depths], numClasses };
}

/**
 * The values for every parameter of `config` (our order), from `p`, checked first: every tensor of the file must
 * be a parameter of the model with exactly its shape, and every parameter but the head must be in the file. The
 * head is taken when its class count matches, else left out (`headReplaced`, the caller keeps a fresh head).
 */
export function matchPretrained(p: Pretrained, config: ModelConfig): { values: Map<string, Float32Array>; headReplaced: boolean } {
  const specs = parameterSpecs(config);
  const headFits = p.headClasses === config.numClasses;
  const problems: string[] = [];
  const values = new Map<string, Float32Array>();
  const known = new Set(specs.map((s) => s.name));
  for (const s of specs) {
    const isHead = s.name === HEAD_KERNEL || s.name === HEAD_BIAS;
    const w = p.weights.get(s.name);
    if (isHead && !headFits) continue;
    if (!w) { problems.push(`missing ${s.name}: expected shape [${s.shape.join(', ')}]`); continue; }
    if (w.shape.length !== s.shape.length || w.shape.some((d, i) => d !== s.shape[i])) {
      problems.push(`${w.fileName}${w.fileName !== s.name ? ` (${s.name})` : ''} has shape [${w.shape.join(', ')}], expected [${s.shape.join(', ')}]`);
      continue;
    }
    values.set(s.name, w.values);
  }
  for (const w of p.weights.values()) if (!known.has(w.name)) problems.push(`unexpected ${w.fileName}${w.fileName !== w.name ? ` (${w.name})` : ''} [${w.shape.join(', ')}]`);
  if (problems.length) {
    throw new UserError(`the weights do not fit the ${config.name} architecture read from the file (${problems.length} problem(s)):\n  ${problems.slice(0, 20).join('\n  ')}${problems.length > 20 ? `\n  … and ${problems.length - 20} more` : ''}`, {
      file: p.file, fix: 'the file is damaged or mixes architectures: download it again',
    });
  }
  return { values, headReplaced: !headFits };
}
