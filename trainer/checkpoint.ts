import * as tf from '@tensorflow/tfjs-core';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError, sha256Hex, stableStringify, writeFileAtomic } from '../manifests/index.ts';
import { validateConfig, type Model, type ModelConfig } from './model.ts';
import { buildModel } from './model-build.ts';

/**
 * Checkpoint folder (docs/model-and-losses.md):
 *   model.json   { format, formatVersion, config, weightsManifest, weightsSha256 }
 *   weights.bin  float32 little-endian, the weights of weightsManifest concatenated in order
 * `weightsManifest` has the layout of a tfjs model.json, so the same reader loads our checkpoints and the
 * weights of a tfjs(-layers) model folder (model.json + group1-shard*.bin).
 * weights.bin is written before model.json, both atomically; model.json carries the digest of weights.bin, so a
 * reader never pairs a manifest with other weights unnoticed.
 */

export const CHECKPOINT_FORMAT = 'cfgen-resnetv2-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;
const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

interface ManifestWeight {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: 'uint8' | 'uint16' | 'float16'; scale?: number; min?: number };
}
interface ManifestGroup { paths: string[]; weights: ManifestWeight[] }

interface CheckpointJson {
  format: string;
  formatVersion: number;
  config: ModelConfig;
  weightsManifest: ManifestGroup[];
  weightsSha256: string;
}

export async function saveModel(model: Model, dir: string): Promise<void> {
  const weights: ManifestWeight[] = [];
  const parts: Float32Array[] = [];
  model.variables.forEach((v, i) => {
    weights.push({ name: model.paramNames[i], shape: v.shape, dtype: 'float32' });
    parts.push(v.dataSync() as Float32Array);
  });
  const total = parts.reduce((a, p) => a + p.length, 0);
  const all = new Float32Array(total);
  let off = 0;
  for (const p of parts) { all.set(p, off); off += p.length; }
  const bytes = littleEndianBytes(all);
  const json: CheckpointJson = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    config: model.config,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights }],
    weightsSha256: sha256Hex(bytes),
  };
  await writeFileAtomic(join(dir, WEIGHTS_BIN), bytes);
  await writeFileAtomic(join(dir, MODEL_JSON), stableStringify(json, 2) + '\n');
}

/** Builds the model described by `dir/model.json` and loads its weights (strict). */
export async function loadModel(dir: string): Promise<Model> {
  const { json, file } = await readModelJson(dir);
  checkCheckpointJson(json, file);
  const model = await buildModel(json.config, 0);
  try {
    await loadWeightsInto(model, dir, { strict: true });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * A checkpoint's config and weights (our names, HWIO kernels), checked like loadModel's (format, version, config,
 * weights digest) but without building a model, so no tfjs backend is needed: the weight exporters read it.
 */
export async function readCheckpoint(dir: string): Promise<{ config: ModelConfig; weights: { name: string; shape: number[]; values: Float32Array }[]; weightsSha256: string }> {
  const { json, file } = await readModelJson(dir);
  checkCheckpointJson(json, file);
  const weights = await readManifestWeights(dir, json.weightsManifest, file, json.weightsSha256);
  return { config: json.config, weights, weightsSha256: json.weightsSha256 };
}

function checkCheckpointJson(json: CheckpointJson, file: string): void {
  if (json.format !== CHECKPOINT_FORMAT) {
    throw new UserError(`not a ${CHECKPOINT_FORMAT} (format is ${JSON.stringify(json.format)})`, {
      file,
      fix: 'for other weights (tfjs model folder, converted BiT .npz), create the model with createModel() and call loadWeightsInto(model, dir)',
    });
  }
  if (json.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new UserError(`checkpoint format version ${json.formatVersion} is not supported (this build reads ${CHECKPOINT_FORMAT_VERSION})`, { file });
  }
  try {
    validateConfig(json.config);
  } catch (e) {
    throw new UserError((e as Error).message, { file });
  }
}

export interface LoadWeightsOptions {
  /** every model parameter must be found with its shape and every file weight used (default true) */
  strict?: boolean;
  /**
   * Map a file weight name to a model parameter name (return null to ignore the weight). A record maps
   * listed names and keeps the others unchanged.
   */
  rename?: Record<string, string> | ((fileName: string) => string | null);
}

export interface LoadReport {
  /** model parameters that received values */
  loaded: string[];
  /** model parameters with no weight of that name in the file (they keep their values) */
  missing: string[];
  /** file weights (after renaming) that match no model parameter */
  unused: string[];
  /** same name, different shape (skipped) */
  mismatched: { name: string; modelShape: number[]; fileShape: number[] }[];
}

/**
 * Initialise `model` from weights on disk, matching by name and shape. `dir` holds a model.json with a
 * `weightsManifest` (our checkpoints, or a tfjs model folder with group*-shard*.bin files). Shapes match when
 * they are equal after dropping leading size-1 dims (a [1,1,C,K] head loads into [C,K] and back).
 * Strict: any missing, unused or mismatched weight is an error listing them all. Not strict: loads what
 * matches (e.g. all but a head with another class count) and reports the rest; at least one must match.
 */
export async function loadWeightsInto(model: Model, dir: string, opts: LoadWeightsOptions = {}): Promise<LoadReport> {
  const strict = opts.strict ?? true;
  const { json, file } = await readModelJson(dir);
  if (!Array.isArray(json.weightsManifest)) {
    throw new UserError('no weightsManifest in model.json', { file, fix: 'point at a folder written by saveModel or a tfjs model folder' });
  }
  const fileWeights = await readManifestWeights(dir, json.weightsManifest, file, json.weightsSha256);
  const rename = opts.rename;
  const mapName = (n: string): string | null =>
    rename === undefined ? n : typeof rename === 'function' ? rename(n) : (rename[n] ?? n);

  const byName = new Map<string, { shape: number[]; values: Float32Array; fileName: string }>();
  for (const w of fileWeights) {
    const target = mapName(w.name);
    if (target === null) continue;
    if (byName.has(target)) throw new UserError(`two weights map to parameter ${target} (${byName.get(target)!.fileName}, ${w.name})`, { file });
    byName.set(target, { shape: w.shape, values: w.values, fileName: w.name });
  }
  const report: LoadReport = { loaded: [], missing: [], unused: [], mismatched: [] };
  const assignments: [tf.Variable, Float32Array][] = [];
  const used = new Set<string>();
  model.paramNames.forEach((name, i) => {
    const v = model.variables[i];
    const w = byName.get(name);
    if (!w) { report.missing.push(name); return; }
    used.add(name);
    if (!sameShape(v.shape, w.shape)) {
      report.mismatched.push({ name, modelShape: v.shape, fileShape: w.shape });
      return;
    }
    assignments.push([v, w.values]);
    report.loaded.push(name);
  });
  for (const n of byName.keys()) if (!used.has(n)) report.unused.push(n);

  const problems = strict
    ? report.missing.length + report.unused.length + report.mismatched.length > 0
    : report.loaded.length === 0;
  if (problems) {
    throw new UserError(`weights do not fit model '${model.config.name}' (${report.loaded.length} of ${model.paramNames.length} parameters matched)\n${describeReport(report)}`, {
      file,
      fix: strict
        ? 'rename weights with the rename option, or load with {strict: false} to keep unmatched parameters (e.g. a new head)'
        : 'the weight names do not follow the model\'s naming: pass a rename map (docs/model-and-losses.md)',
    });
  }
  // assign copies into the variable; the temporary tensor must be freed or every load leaks one per variable
  for (const [v, values] of assignments) tf.tidy(() => v.assign(tf.tensor(values, v.shape, 'float32')));
  return report;
}

export function describeReport(r: LoadReport, maxEach = 20): string {
  const list = (title: string, items: string[]): string => {
    if (items.length === 0) return '';
    const shown = items.slice(0, maxEach).map((s) => `    ${s}`).join('\n');
    const more = items.length > maxEach ? `\n    … and ${items.length - maxEach} more` : '';
    return `  ${title} (${items.length}):\n${shown}${more}\n`;
  };
  return (
    list('shape mismatch (model vs file)', r.mismatched.map((m) => `${m.name}: [${m.modelShape.join(', ')}] vs [${m.fileShape.join(', ')}]`)) +
    list('missing from file', r.missing) +
    list('in file but not in model', r.unused)
  ).trimEnd();
}

function sameShape(a: number[], b: number[]): boolean {
  const strip = (s: number[]): number[] => { let i = 0; while (i < s.length - 1 && s[i] === 1) i++; return s.slice(i); };
  const x = strip(a), y = strip(b);
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

async function readModelJson(dir: string): Promise<{ json: CheckpointJson; file: string }> {
  const file = join(dir, MODEL_JSON);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UserError('cannot read model.json', { file, fix: 'pass the folder that holds model.json (written by saveModel or a tfjs model export)' });
  }
  try {
    return { json: JSON.parse(text) as CheckpointJson, file };
  } catch (e) {
    throw new UserError(`model.json is not valid JSON: ${(e as Error).message}`, { file });
  }
}

function littleEndianBytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setFloat32(i * 4, a[i], true);
  return out;
}

function bytesPerElement(w: ManifestWeight): number {
  if (w.quantization) return w.quantization.dtype === 'uint8' ? 1 : 2;
  if (w.dtype === 'float32' || w.dtype === 'int32') return 4;
  if (w.dtype === 'bool') return 1;
  throw new Error(`unsupported weight dtype ${w.dtype} for ${w.name}`);
}

function float16ToFloat32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * Math.pow(2, e - 15) * (1 + f / 1024);
}

async function readManifestWeights(dir: string, manifest: ManifestGroup[], file: string, sha?: string): Promise<{ name: string; shape: number[]; values: Float32Array }[]> {
  const out: { name: string; shape: number[]; values: Float32Array }[] = [];
  for (const group of manifest) {
    const buffers: Buffer[] = [];
    for (const p of group.paths) {
      const path = join(dir, p);
      try {
        buffers.push(await readFile(path));
      } catch {
        throw new UserError(`weights file ${p} listed in the manifest cannot be read`, { file: path, fix: 'copy every shard listed in model.json next to it' });
      }
    }
    const buf = Buffer.concat(buffers);
    if (sha !== undefined && sha256Hex(buf) !== sha) {
      throw new UserError('weights file does not match the digest in model.json (partly overwritten or mixed checkpoints)', {
        file, fix: 'save the checkpoint again',
      });
    }
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 0;
    for (const w of group.weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      let bpe: number;
      try {
        bpe = bytesPerElement(w);
      } catch (e) {
        throw new UserError((e as Error).message, { file });
      }
      if (off + n * bpe > buf.byteLength) {
        throw new UserError(`weights data ends before ${w.name} (needs ${off + n * bpe} bytes, have ${buf.byteLength})`, { file });
      }
      const v = new Float32Array(n);
      const q = w.quantization;
      for (let i = 0; i < n; i++) {
        const at = off + i * bpe;
        if (q?.dtype === 'uint8') v[i] = dv.getUint8(at) * (q.scale ?? 1) + (q.min ?? 0);
        else if (q?.dtype === 'uint16') v[i] = dv.getUint16(at, true) * (q.scale ?? 1) + (q.min ?? 0);
        else if (q?.dtype === 'float16') v[i] = float16ToFloat32(dv.getUint16(at, true));
        else if (w.dtype === 'float32') v[i] = dv.getFloat32(at, true);
        else if (w.dtype === 'int32') v[i] = dv.getInt32(at, true);
        else v[i] = dv.getUint8(at);
      }
      off += n * bpe;
      out.push({ name: w.name, shape: w.shape, values: v });
    }
  }
  return out;
}
