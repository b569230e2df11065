import { validateConfig, type ModelConfig } from '../model-config.ts';
import type { FileArchitecture } from './bit-names.ts';

/**
 * What a weights file we export says about the network beyond its tensors. BiT's and timm's files carry no
 * architecture: readers assume BiT's fixed choices (root stride 2 with the padded max-pool, stage strides 1/2/2/2,
 * 32 GroupNorm groups) and the source's weight-standardisation ε. Our presets differ (`small`: no root pool, 8
 * groups), so an export records the full model config where tools that read the real formats never look: the
 * `__metadata__` strings of a .safetensors, and the zip archive comment of a .npz (numpy, timm and BiT's loaders
 * ignore both). Read back, it replaces those assumptions, so `--init` from a .npz and from a .safetensors of the
 * same checkpoint build the same network with the same ε and train identically.
 */

/** The metadata key (safetensors `__metadata__`, and the .npz comment's JSON object) holding the config. */
export const MODEL_META_KEY = 'cfgen.model_config';

/** Metadata of an export: the model config (JSON) plus free-form provenance strings. */
export function exportMetadata(config: ModelConfig, extra: Record<string, string> = {}): Record<string, string> {
  const { backbone: _, ...resnet } = config;
  return { ...extra, [MODEL_META_KEY]: JSON.stringify(resnet) };
}

/** JSON with every non-ASCII character escaped: a zip comment is read as CP437, so it must stay ASCII. */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The metadata dict a .npz comment holds, or null for a comment that is not ours (real BiT files have none). */
export function metadataFromComment(comment: string): Record<string, string> | null {
  if (!comment.trim().startsWith('{')) return null;
  try {
    const v = JSON.parse(comment) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
    return Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) as Record<string, string>;
  } catch {
    return null;
  }
}

/**
 * The architecture of a file with our metadata: the recorded config, after checking that it describes the file's
 * tensors (root kernel and width, stage widths and depths, bottleneck, head classes). Returns `inferred` unchanged
 * when the metadata has no config. Throws an Error naming the disagreement; the caller adds the file.
 */
export function applyModelMeta(inferred: FileArchitecture, metadata: Record<string, string> | null): FileArchitecture {
  const text = metadata?.[MODEL_META_KEY];
  if (text === undefined) return inferred;
  let meta: ModelConfig;
  try {
    meta = JSON.parse(text) as ModelConfig;
    if (!meta || typeof meta !== 'object' || typeof meta.name !== 'string' || typeof meta.rootPool !== 'boolean') throw new Error('not a model config object');
    validateConfig(meta);
  } catch (e) {
    throw new Error(`its ${MODEL_META_KEY} metadata is not a model config (${(e as Error).message})`);
  }
  const f = inferred.config;
  const pairs: [string, unknown, unknown][] = [
    ['root width', meta.rootWidth, f.rootWidth], ['root kernel', meta.rootKernel ?? 7, f.rootKernel],
    ['stage widths', meta.widths.join('/'), f.widths.join('/')], ['stage depths', meta.depths.join('/'), f.depths.join('/')],
    ['bottleneck', meta.bottleneck, f.bottleneck], ['head classes', meta.numClasses, inferred.headClasses],
  ];
  const off = pairs.filter(([, m, t]) => m !== t).map(([what, m, t]) => `${what} ${String(m)} in the metadata, ${String(t)} in the tensors`);
  if (off.length) throw new Error(`its ${MODEL_META_KEY} metadata does not describe its tensors: ${off.join('; ')}`);
  const { numClasses: _, backbone: __, ...config } = meta;
  return { config, headClasses: inferred.headClasses };
}
