import { UserError } from '../../manifests/errors.ts';
import { sha256Hex, writeFileAtomic } from '../../manifests/io.ts';
import { TOOL_VERSION } from '../../manifests/version.ts';
import { readCheckpoint } from '../checkpoint.ts';
import { parameterSpecs, type ModelConfig } from '../model-config.ts';
import { asciiJson, exportMetadata } from './cfgen-meta.ts';
import { npzBytes, type NamedArray } from './write-npz.ts';
import { safetensorsBytes } from './write-safetensors.ts';
import { toTimmArrays } from './write-timm.ts';

/**
 * Our checkpoints as the files people download (docs/pretrained.md, "Exporting our checkpoints"): Google's BiT
 * `.npz` (our names are BiT's, HWIO float32 .npy arrays in a zip) and timm's `model.safetensors` (timm names, OIHW).
 * Both are read back by `cfgen train --init`, by numpy/timm/BiT code, and carry the model config in metadata
 * those tools ignore (cfgen-meta.ts), so a network that is not BiT-shaped (our `small`) round-trips exactly.
 */

/** `npz`: Google's BiT release layout; `safetensors`: timm's ResNetV2 on Hugging Face. */
export type ExportFormat = 'npz' | 'safetensors';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['npz', 'safetensors'];

/** What an export wrote. */
export interface ExportResult { file: string; format: ExportFormat; tensors: number; bytes: number; sha256: string }

/** The format `--init` would read a file name as (it goes by the extension), or null. */
export function formatOfFile(file: string): ExportFormat | null {
  if (/\.npz$/i.test(file)) return 'npz';
  if (/\.safetensors$/i.test(file)) return 'safetensors';
  return null;
}

/**
 * The file's bytes. `weights` must be exactly the parameters of `config` with their shapes (what a checkpoint of
 * that config holds), so the file is one our reader, and BiT's or timm's loaders, accept whole. `compress`: deflate
 * the .npz entries (numpy.savez_compressed).
 */
export function exportBytes(config: ModelConfig, weights: NamedArray[], format: ExportFormat, opts: { compress?: boolean; provenance?: Record<string, string> } = {}): Buffer {
  if (config.backbone) {
    throw new UserError(`a --backbone model (${config.backbone.dir}) is not a ResNetV2: it has no BiT or timm form`, { fix: 'export ResNetV2 runs only; the backbone folder itself is the pretrained model' });
  }
  const specs = parameterSpecs(config);
  const byName = new Map(weights.map((w) => [w.name, w]));
  const problems: string[] = [];
  for (const s of specs) {
    const w = byName.get(s.name);
    if (!w) problems.push(`missing ${s.name}`);
    else if (w.shape.join(',') !== s.shape.join(',')) problems.push(`${s.name} has shape [${w.shape.join(', ')}], the config says [${s.shape.join(', ')}]`);
  }
  const known = new Set(specs.map((s) => s.name));
  for (const w of weights) if (!known.has(w.name)) problems.push(`unexpected ${w.name}`);
  if (problems.length) throw new UserError(`the weights do not match their model config: ${problems.slice(0, 8).join('; ')}`, { fix: 'export a checkpoint written by cfgen train (runs/<id>/best)' });
  // the config's parameter order, which is BiT's file order too
  const ordered = specs.map((s) => byName.get(s.name)!);
  const metadata = exportMetadata(config, { 'cfgen.version': TOOL_VERSION, ...opts.provenance });
  if (format === 'npz') return npzBytes(ordered, { deflate: opts.compress, comment: asciiJson(metadata) });
  return safetensorsBytes(toTimmArrays(ordered), { format: 'pt', ...metadata });
}

/**
 * Export the checkpoint folder `dir` (model.json + weights.bin, e.g. runs/<id>/best) to `out`, atomically. The
 * file name must end in the format's extension, since `--init` chooses its reader by the extension.
 */
export async function exportCheckpoint(dir: string, out: string, format: ExportFormat, opts: { compress?: boolean } = {}): Promise<ExportResult> {
  const ext = formatOfFile(out);
  if (ext !== format) {
    throw new UserError(`the output file's name does not end in .${format}`, { file: out, fix: `name it <something>.${format}: cfgen train --init picks the reader by the extension` });
  }
  if (opts.compress && format !== 'npz') throw new UserError('--compress applies to .npz only (safetensors are never compressed)', { fix: 'drop --compress' });
  const ck = await readCheckpoint(dir);
  const bytes = exportBytes(ck.config, ck.weights, format, { compress: opts.compress, provenance: { 'cfgen.source_weights_sha256': ck.weightsSha256 } });
  await writeFileAtomic(out, bytes);
  return { file: out, format, tensors: ck.weights.length, bytes: bytes.length, sha256: sha256Hex(bytes) };
}
