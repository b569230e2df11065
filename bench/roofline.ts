/**
 * Backend roofline (matmul and conv2d GFLOP/s) and, for wasm, our replacement kernels against the stock ones.
 *
 * usage: npx tsx bench/roofline.ts [--backend wasm|cpu|auto|tensorflow|tensorflow-gpu] [--reps 3] [--no-kernels]
 *
 * Numbers are best-of-reps wall times (the machine is shared; the least disturbed run is the closest to the
 * hardware). The 1-minute load average is printed with them. Training-step timings are bench/train.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { Command } from 'commander';
import { cpus, loadavg } from 'node:os';
import { BACKEND_CHOICES, initBackend, type BackendChoice } from '../trainer/backend.ts';
import { setFilterGradStrategy } from '../trainer/kernels/conv2d_backprop_filter.ts';
import { stockWasmKernel } from '../trainer/kernels/index.ts';
import { bestTimeMs, convFlops, measureRoofline, type ConvShape } from '../trainer/roofline.ts';

function seeded(shape: number[], seed: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(i * 0.377 + seed);
  return tf.tensor(v, shape);
}

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor =>
  tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;

const setUp = new Set<string>();
/** the stock wasm kernel, called directly (it may be the only way to reach it once ours is registered) */
function runStock(name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor {
  const k = stockWasmKernel(name);
  if (!k) throw new Error(`no stock wasm kernel ${name}`);
  // it was unregistered before the backend started, so the backend never ran its setup (binding the C++ entry)
  if (!setUp.has(name)) { k.setupFunc?.(tf.backend()); setUp.add(name); }
  const info = k.kernelFunc({ inputs, attrs, backend: tf.backend() } as never) as tf.TensorInfo;
  // wrap so bestTimeMs can read and dispose it like any tensor
  return tf.engine().makeTensorFromTensorInfo(info);
}

interface Row { kernel: string; shape: string; stockMs: number | null; oursMs: number; gflop: number }

function kernelRows(reps: number): Row[] {
  const rows: Row[] = [];
  const shapes: ConvShape[] = [
    { batch: 32, size: 32, cin: 16, cout: 16, k: 3, stride: 1 },
    { batch: 32, size: 16, cin: 32, cout: 32, k: 3, stride: 1 },
    { batch: 32, size: 32, cin: 16, cout: 32, k: 3, stride: 2 },
    { batch: 32, size: 64, cin: 3, cout: 16, k: 3, stride: 2 },
  ];
  for (const s of shapes) {
    const out = Math.ceil(s.size / s.stride);
    const x = seeded([s.batch, s.size, s.size, s.cin], 1);
    const dy = seeded([s.batch, out, out, s.cout], 2);
    const w = seeded([s.k, s.k, s.cin, s.cout], 3);
    const label = `b${s.batch} ${s.size}x${s.size}x${s.cin}->${s.cout} k${s.k} s${s.stride}`;
    const inAttrs = { strides: s.stride, pad: 'same', dataFormat: 'NHWC', inputShape: x.shape };
    rows.push({
      kernel: 'Conv2DBackpropInput', shape: label, gflop: convFlops(s) / 1e9,
      stockMs: bestTimeMs(() => runStock('Conv2DBackpropInput', { dy, filter: w }, inAttrs), reps),
      oursMs: bestTimeMs(() => run('Conv2DBackpropInput', { dy, filter: w }, inAttrs), reps),
    });
    const fAttrs = { strides: s.stride, pad: 'same', dataFormat: 'NHWC', filterShape: w.shape };
    setFilterGradStrategy('taps');
    const taps = bestTimeMs(() => run('Conv2DBackpropFilter', { x, dy }, fAttrs), reps);
    setFilterGradStrategy('conv');
    rows.push({ kernel: 'Conv2DBackpropFilter (stock: none; here: per-tap matmuls)', shape: label, gflop: convFlops(s) / 1e9, stockMs: taps,
      oursMs: bestTimeMs(() => run('Conv2DBackpropFilter', { x, dy }, fAttrs), reps) });
    rows.push({ kernel: 'Conv2D (forward, reference)', shape: label, gflop: convFlops(s) / 1e9, stockMs: null,
      oursMs: bestTimeMs(() => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s.stride, 'same'), reps) });
    tf.dispose([x, dy, w]);
  }
  const mm: Array<[string, number[], number[], boolean, boolean]> = [
    ['transposeA 512', [512, 512], [512, 512], true, false],
    ['transposeB 512', [512, 512], [512, 512], false, true],
    ['shared ones · batched (GroupNorm sum)', [1, 1, 1024], [32, 1024, 16], false, false],
    ['batched · shared weight', [32, 64, 64], [64, 64], false, false],
  ];
  for (const [label, sa, sb, ta, tb] of mm) {
    const a = seeded(sa, 4), b = seeded(sb, 5);
    const m = ta ? sa[sa.length - 1] : sa[sa.length - 2], k = ta ? sa[sa.length - 2] : sa[sa.length - 1];
    const n = tb ? sb[sb.length - 2] : sb[sb.length - 1];
    const batch = Math.max(sa.slice(0, -2).reduce((p, q) => p * q, 1), sb.slice(0, -2).reduce((p, q) => p * q, 1));
    const attrs = { transposeA: ta, transposeB: tb };
    rows.push({ kernel: 'BatchMatMul', shape: label, gflop: (2 * batch * m * k * n) / 1e9,
      stockMs: bestTimeMs(() => runStock('BatchMatMul', { a, b }, attrs), reps),
      oursMs: bestTimeMs(() => run('BatchMatMul', { a, b }, attrs), reps) });
    tf.dispose([a, b]);
  }
  {
    const x = seeded([32, 32, 32, 16], 6);
    const y = tf.maxPool(x as tf.Tensor4D, 3, 2, 'same');
    const dy = seeded(y.shape, 7);
    const attrs = { filterSize: 3, strides: 2, pad: 'same' };
    rows.push({ kernel: 'MaxPoolGrad (stock is wrong for windows with max <= 0)', shape: 'b32 32x32x16 3x3 s2', gflop: 0,
      stockMs: bestTimeMs(() => runStock('MaxPoolGrad', { dy, input: x, output: y }, attrs), reps),
      oursMs: bestTimeMs(() => run('MaxPoolGrad', { dy, input: x, output: y }, attrs), reps) });
    tf.dispose([x, y, dy]);
  }
  return rows;
}

async function main(): Promise<void> {
  const program = new Command('roofline')
    .description('backend roofline (matmul / conv2d GFLOP/s) and wasm kernel comparisons')
    .option('--backend <name>', `one of ${BACKEND_CHOICES.join(', ')}`, 'wasm')
    .option('--reps <n>', 'timed repetitions per measurement (best is reported)', '3')
    .option('--no-kernels', 'skip the stock-vs-ours wasm kernel table')
    .parse();
  const o = program.opts<{ backend: BackendChoice; reps: string; kernels: boolean }>();
  const reps = Math.max(1, Number(o.reps));
  const info = await initBackend({ backend: o.backend });
  console.log(`backend: ${info.name} (${info.reason})`);
  console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? '?'}), load average ${loadavg()[0].toFixed(1)} at start`);

  const roof = await measureRoofline({ reps });
  console.log(`\nroofline: matmul ${roof.matmulGflops.toFixed(2)} GFLOP/s, conv2d ${roof.conv2dGflops.toFixed(2)} GFLOP/s`);
  for (const s of roof.shapes) console.log(`  ${s.what.padEnd(40)} ${s.ms.toFixed(1).padStart(8)} ms ${s.gflops.toFixed(2).padStart(7)} GFLOP/s`);

  if (o.kernels && info.name === 'wasm') {
    console.log('\nwasm kernels, best ms (stock → ours):');
    const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(1)).padStart(9);
    for (const r of kernelRows(reps)) {
      const speed = r.stockMs !== null ? `${(r.stockMs / r.oursMs).toFixed(1)}x` : '';
      const gf = r.gflop > 0 ? `${(r.gflop * 1e3 / r.oursMs).toFixed(2)} GFLOP/s` : '';
      console.log(`  ${r.kernel.padEnd(58)} ${r.shape.padEnd(38)} ${fmt(r.stockMs)} ${fmt(r.oursMs)} ${speed.padStart(7)}  ${gf}`);
    }
    const backend = tf.backend() as unknown as BackendWasm;
    console.log(`\n(wasm heap data ids alive at exit: ${backend.numDataIds()})`);
  }
  console.log(`load average at end ${loadavg()[0].toFixed(1)}`);
}

await main();
