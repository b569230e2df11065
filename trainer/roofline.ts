/**
 * Attainable throughput of the active tfjs backend: a large square matmul and the conv2d shapes of a small
 * ResNet at 64 px, batch 32. The training bench divides its step FLOPs by these to report how far a step is from
 * what the backend can do. Call after initBackend().
 *
 * Each figure is the best of a few timed repetitions after a warm-up: the machine is shared, so the best run is
 * the least disturbed one. Weights are reused across repetitions (XNNPACK packs a weight tensor once), so these
 * are peak figures; a training step, whose standardised weights are new tensors each step, repacks them.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface ConvShape {
  batch: number;
  size: number;
  cin: number;
  cout: number;
  k: number;
  stride: number;
}

export interface RooflineShape {
  what: string;
  gflop: number;
  ms: number;
  gflops: number;
}

export interface RooflineResult {
  /** BatchMatMul, n×n·n×n */
  matmulGflops: number;
  /** total FLOPs / total best time over CONV_SHAPES */
  conv2dGflops: number;
  backend: string;
  shapes: RooflineShape[];
}

/** 3x3 convs of the 16-32-64 ResNet at 64 px (after a stride-2 root), plus its root conv */
export const CONV_SHAPES: ConvShape[] = [
  { batch: 32, size: 64, cin: 3, cout: 16, k: 3, stride: 2 },
  { batch: 32, size: 32, cin: 16, cout: 16, k: 3, stride: 1 },
  { batch: 32, size: 16, cin: 32, cout: 32, k: 3, stride: 1 },
  { batch: 32, size: 8, cin: 64, cout: 64, k: 3, stride: 1 },
];

/** best wall time in ms of `reps` runs of f (after one warm-up), including the read-back that forces execution */
export function bestTimeMs(f: () => tf.Tensor, reps: number): number {
  tf.tidy(() => { f().dataSync(); });
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    tf.tidy(() => { f().dataSync(); });
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

function seeded(shape: number[], seed: number): tf.Tensor {
  // data content does not affect speed; a cheap deterministic fill avoids tf.random's JS cost
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(i * 0.618 + seed);
  return tf.tensor(v, shape);
}

export function convFlops(s: ConvShape): number {
  const out = Math.ceil(s.size / s.stride);
  return 2 * s.batch * out * out * s.k * s.k * s.cin * s.cout;
}

export async function measureRoofline(opts: { matmulSize?: number; reps?: number } = {}): Promise<RooflineResult> {
  await tf.ready();
  const n = opts.matmulSize ?? 1024;
  const reps = opts.reps ?? 3;
  const shapes: RooflineShape[] = [];
  const record = (what: string, flop: number, ms: number): RooflineShape => {
    const r = { what, gflop: flop / 1e9, ms, gflops: flop / 1e6 / ms };
    shapes.push(r);
    return r;
  };

  const a = seeded([n, n], 1), b = seeded([n, n], 2);
  const mm = record(`matmul ${n}x${n}x${n}`, 2 * n ** 3, bestTimeMs(() => tf.matMul(a, b), reps));
  a.dispose(); b.dispose();

  let convFlop = 0, convMs = 0;
  for (const s of CONV_SHAPES) {
    const x = seeded([s.batch, s.size, s.size, s.cin], 3) as tf.Tensor4D;
    const w = seeded([s.k, s.k, s.cin, s.cout], 4) as tf.Tensor4D;
    const ms = bestTimeMs(() => tf.conv2d(x, w, s.stride, 'same'), reps);
    record(`conv2d b${s.batch} ${s.size}x${s.size}x${s.cin}->${s.cout} k${s.k} s${s.stride}`, convFlops(s), ms);
    convFlop += convFlops(s);
    convMs += ms;
    x.dispose(); w.dispose();
  }
  return { matmulGflops: mm.gflops, conv2dGflops: convFlop / 1e6 / convMs, backend: tf.getBackend(), shapes };
}
