/**
 * Kernel probe harness: runs the ResNetV2 op patterns (probe_cases.ts) forward, backward and doubly backward on a
 * backend and on the cpu reference, and reports missing kernels/gradients and numerical mismatches. Used by
 * test/kernels.test.ts and by the developer bench `npx tsx bench/kernels-probe.ts [--stock]`.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { rngFor } from '../../manifests/rng.ts';
import { probeCases, type ProbeCase } from './probe_cases.ts';

/** The three passes a case goes through: the op, its gradient, and the gradient of a gradient (saliency penalty). */
export type Stage = 'forward' | 'backward' | 'double';
/** The stages in the order they run (a failing one stops the later ones). */
export const STAGES: Stage[] = ['forward', 'backward', 'double'];

/** every stage's outputs flattened to arrays, keyed "stage:input" */
export type CaseOutputs = Map<string, Float32Array>;

/** One case's outcome at one stage on the backend under test. */
export interface StageResult {
  case: string;
  stage: Stage;
  /** the error thrown on the backend under test, if any */
  error?: string;
  /** max |test - ref| / max(|ref|, 1e-3) over the stage's outputs */
  relErr?: number;
}

function weightsLike(name: string, shape: number[]): tf.Tensor {
  const rng = rngFor('probe-objective', name, shape.join('x'));
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.normal()), shape);
}

/**
 * Like tf.grads, but an input the result does not depend on gets zeros instead of an error (tf.grads throws
 * if any input is unconnected; e.g. the input gradient of a linear layer does not depend on its input).
 */
export function gradientsOrZeros(f: (...args: tf.Tensor[]) => tf.Scalar, xs: tf.Tensor[]): tf.Tensor[] {
  const { value, grads } = tf.engine().gradients(() => f(...xs), xs, undefined, true);
  value.dispose();
  return xs.map((x, i) => grads[i] ?? tf.zerosLike(x));
}

/** Runs one case on the current backend; throws on the first failing stage (with the stage in `.stage`). */
export function runCase(c: ProbeCase): { outputs: CaseOutputs; failed?: { stage: Stage; error: string } } {
  const outputs: CaseOutputs = new Map();
  const keys = Object.keys(c.inputs);
  const diffKeys = keys.filter((k) => c.inputs[k].differentiable);
  let stage: Stage = 'forward';
  try {
    tf.tidy(() => {
      const t: Record<string, tf.Tensor> = {};
      for (const k of keys) t[k] = tf.tensor(c.inputs[k].values, c.inputs[k].shape, c.inputs[k].dtype);
      const y = c.fn(t);
      outputs.set('forward', y.dataSync() as Float32Array);
      const r = weightsLike(c.name, y.shape);
      const objective = (vals: Record<string, tf.Tensor>): tf.Scalar => tf.sum(tf.mul(c.fn(vals), r));
      const withDiff = (args: tf.Tensor[]): Record<string, tf.Tensor> => {
        const vals = { ...t };
        diffKeys.forEach((k, i) => { vals[k] = args[i]; });
        return vals;
      };

      stage = 'backward';
      const grads = gradientsOrZeros((...args) => objective(withDiff(args)), diffKeys.map((k) => t[k]));
      diffKeys.forEach((k, i) => outputs.set(`backward:${k}`, grads[i].dataSync() as Float32Array));

      if (c.saliencyInput === null) return;
      stage = 'double';
      const salKey = c.saliencyInput;
      const saliency = (...args: tf.Tensor[]): tf.Scalar => {
        const vals = withDiff(args);
        const inputGrad = tf.grad((x: tf.Tensor) => objective({ ...vals, [salKey]: x }))(vals[salKey]);
        return tf.sum(tf.square(inputGrad));
      };
      const dgrads = gradientsOrZeros(saliency, diffKeys.map((k) => t[k]));
      diffKeys.forEach((k, i) => outputs.set(`double:${k}`, dgrads[i].dataSync() as Float32Array));
    });
  } catch (e) {
    return { outputs, failed: { stage, error: (e as Error).message.split('\n')[0] } };
  }
  return { outputs };
}

/** Max |test − ref| over max(|ref|, 1e-3); Infinity when the lengths differ, and NaN-safe (a NaN counts as a mismatch). */
export function relativeError(test: Float32Array, ref: Float32Array): number {
  if (test.length !== ref.length) return Infinity;
  let maxDiff = 0, maxRef = 1e-3;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(test[i] - ref[i]);
    if (!(d <= maxDiff)) maxDiff = d; // also catches NaN
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  return maxDiff / maxRef;
}

/** Runs every case on `backend` and on cpu; the backend must already be registered and initialised. */
export async function probe(backend: string, cases: ProbeCase[] = probeCases()): Promise<StageResult[]> {
  const before = tf.getBackend();
  await tf.setBackend('cpu');
  const reference = cases.map((c) => runCase(c));
  await tf.setBackend(backend);
  const results: StageResult[] = [];
  cases.forEach((c, i) => {
    const got = runCase(c);
    const ref = reference[i];
    for (const stage of STAGES) {
      if (stage === 'double' && c.saliencyInput === null) continue;
      if (got.failed && STAGES.indexOf(got.failed.stage) <= STAGES.indexOf(stage)) {
        results.push({ case: c.name, stage, error: got.failed.stage === stage ? got.failed.error : 'not reached' });
        continue;
      }
      if (ref.failed && STAGES.indexOf(ref.failed.stage) <= STAGES.indexOf(stage)) {
        results.push({ case: c.name, stage, error: `cpu reference failed: ${ref.failed.error}` });
        continue;
      }
      let relErr = 0;
      for (const [key, refValues] of ref.outputs) {
        if (key.split(':')[0] !== stage) continue;
        relErr = Math.max(relErr, relativeError(got.outputs.get(key) ?? new Float32Array(0), refValues));
      }
      results.push({ case: c.name, stage, relErr });
    }
  });
  if (before) await tf.setBackend(before);
  return results;
}

/** The distinct "kernel X not registered" / "gradient not found" messages among the results. */
export function missingPieces(results: StageResult[]): string[] {
  const found = new Set<string>();
  for (const r of results) {
    const m = r.error?.match(/Kernel '[^']+' not registered for backend '[^']+'|gradient function not found for \w+/);
    if (m) found.add(m[0]);
  }
  return [...found].sort();
}
