import * as tf from '@tensorflow/tfjs-core';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../manifests/io.ts';
import type { TrainPreset } from './presets.ts';
import { PyTorchRMSprop } from './optimizers.ts';

/**
 * The optimizer of a run and its state on disk (`optimizer.json` + `optimizer.bin` beside a checkpoint), so a
 * resumed run takes the same next step as one that never stopped.
 */

/** The optimizer a run's hyperparameters name, at their base learning rate. */
export function makeOptimizer(h: Pick<TrainPreset, 'optimizer' | 'lr' | 'momentum'>): tf.Optimizer {
  switch (h.optimizer) {
    case 'sgd': return h.momentum > 0 ? tf.train.momentum(h.lr, h.momentum) : tf.train.sgd(h.lr);
    // PyTorch's RMSprop update and defaults (alpha 0.99, eps 1e-8), not tfjs's: the paper trained with PyTorch (optimizers.ts).
    case 'rmsprop': return new PyTorchRMSprop(h.lr, h.momentum, 0.99, 1e-8);
    case 'adam': return tf.train.adam(h.lr, h.momentum, 0.999, 1e-8);
  }
}

/** Change an optimizer's learning rate in place (the schedule does it before every epoch). */
export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  // tfjs optimizers keep the rate in a field; only some versions have a setter.
  const o = opt as unknown as { setLearningRate?: (lr: number) => void; learningRate: number };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

interface WeightMeta { name: string; shape: number[]; dtype: 'float32' | 'int32'; bytes: number }

/**
 * Names of optimizer state that tfjs's getWeights leaves out, saved after tfjs's own entries. Adam's bias
 * corrections use β1^t and β2^t accumulated as float32 products, step by step; its setWeights recomputes them as
 * pow(β, t + 1), which differs from the product in the last bit at many t (β2 = 0.999: t = 2, 5, 18, …), so a
 * resumed Adam run would drift from one that never stopped. Saving the products keeps resume bit-exact.
 */
const EXTRA_PREFIX = 'cfgen/';
const ADAM_EXTRAS = { 'cfgen/adam/accBeta1': 'accBeta1', 'cfgen/adam/accBeta2': 'accBeta2' } as const;

/** The variables behind ADAM_EXTRAS, or none when `opt` is not tfjs's Adam (SGD, momentum and RMSProp keep nothing else). */
function extraVariables(opt: tf.Optimizer): { name: string; variable: tf.Variable }[] {
  const fields = opt as unknown as Record<string, unknown>;
  if (opt.getClassName() !== 'Adam') return [];
  return Object.entries(ADAM_EXTRAS).map(([name, field]) => {
    const variable = fields[field];
    // A tfjs upgrade that renames the field must fail loudly here, not resume with other bias corrections.
    if (!(variable instanceof tf.Variable)) throw new Error(`tfjs Adam has no ${field} variable: optimizer-state.ts needs updating for this tfjs version`);
    return { name, variable };
  });
}

/** Optimizer state as `optimizer.json` (names, shapes, dtypes) + `optimizer.bin` (the values, in order). */
export async function saveOptimizerState(opt: tf.Optimizer, dir: string): Promise<void> {
  const weights = [...(await opt.getWeights()), ...extraVariables(opt).map((e) => ({ name: e.name, tensor: e.variable as tf.Tensor }))];
  const meta: WeightMeta[] = [];
  const parts: Uint8Array[] = [];
  for (const w of weights) {
    const data = await w.tensor.data();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
    meta.push({ name: w.name, shape: w.tensor.shape, dtype: w.tensor.dtype as WeightMeta['dtype'], bytes: bytes.byteLength });
    parts.push(bytes);
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const blob = new Uint8Array(total);
  let o = 0;
  for (const p of parts) { blob.set(p, o); o += p.length; }
  // The .bin first: a crash between the two writes leaves no .json, which reads as "no state", never as a
  // .json that describes another .bin.
  await writeFileAtomic(join(dir, 'optimizer.bin'), blob);
  await writeJsonAtomic(join(dir, 'optimizer.json'), { weights: meta });
}

async function readIfThere(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * The saved state's description and values, checked against each other; null when `optimizer.json` is not there
 * (a checkpoint written without it). Files that are there but do not agree are a UserError: resuming from them
 * would silently restart the optimizer's moments.
 */
export async function readOptimizerFiles(dir: string): Promise<{ weights: WeightMeta[]; blob: Buffer } | null> {
  const jsonFile = join(dir, 'optimizer.json'), binFile = join(dir, 'optimizer.bin');
  const fix = `pass --fresh to start the run over, or delete ${jsonFile} and ${binFile} to resume with a fresh optimizer state`;
  const text = await readIfThere(jsonFile);
  if (text === null) return null;
  let weights: WeightMeta[];
  try {
    weights = (JSON.parse(text.toString('utf8')) as { weights: WeightMeta[] }).weights;
    if (!Array.isArray(weights)) throw new Error('no "weights" list');
    for (const w of weights) {
      const n = w.shape.reduce((a, b) => a * b, 1);
      if (typeof w.name !== 'string' || !['float32', 'int32'].includes(w.dtype) || w.bytes !== 4 * n) throw new Error(`entry "${w.name}" is inconsistent`);
    }
  } catch (e) {
    throw new UserError(`optimizer state description is corrupt (${(e as Error).message})`, { file: jsonFile, fix });
  }
  const blob = await readIfThere(binFile);
  if (blob === null) throw new UserError('optimizer state values are missing (optimizer.json is there)', { file: binFile, fix });
  const expected = weights.reduce((a, w) => a + w.bytes, 0);
  if (blob.length !== expected) {
    throw new UserError(`optimizer state values are ${blob.length} bytes, optimizer.json describes ${expected}`, { file: binFile, fix });
  }
  return { weights, blob };
}

/**
 * Load the state `saveOptimizerState` wrote into `opt`. False when there is none (the caller starts the optimizer
 * fresh and says so); a UserError when it is there but corrupt.
 */
export async function loadOptimizerState(opt: tf.Optimizer, dir: string): Promise<boolean> {
  const saved = await readOptimizerFiles(dir);
  if (!saved) return false;
  const { weights, blob } = saved;
  let o = 0;
  const named = weights.map((w) => {
    const bytes = new Uint8Array(blob.buffer, blob.byteOffset + o, w.bytes).slice();
    o += w.bytes;
    const values = w.dtype === 'int32' ? new Int32Array(bytes.buffer) : new Float32Array(bytes.buffer);
    return { name: w.name, tensor: tf.tensor(values, w.shape, w.dtype) };
  });
  const extras = new Map(extraVariables(opt).map((e) => [e.name, e.variable]));
  await opt.setWeights(named.filter((n) => !n.name.startsWith(EXTRA_PREFIX)));
  // After setWeights, which has just overwritten them with its pow() approximation. State saved before these
  // entries existed resumes with that approximation, as it always did.
  for (const n of named) if (extras.has(n.name)) extras.get(n.name)!.assign(n.tensor);
  tf.dispose(named.map((n) => n.tensor));
  return true;
}
