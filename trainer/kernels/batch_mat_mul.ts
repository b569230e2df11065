/**
 * BatchMatMul for the wasm backend that reaches XNNPACK in more cases.
 *
 * Why: tfjs-backend-wasm 4.22 sends a matmul to XNNPACK only when neither operand is transposed and both have
 * batch 1; everything else runs a scalar triple loop, 20-40x slower (measured: 1024² matmul 12 GFLOP/s
 * plain, 0.6 GFLOP/s with transposeA). Every matmul *gradient* is transposed, and GroupNorm / pooling written as
 * matmuls against a shared ones/0-1 matrix broadcast one operand over the batch.
 *
 * Here: transposes are made explicit (a cheap copy), a batch-shared right operand folds the batch into rows
 * ([B·M, K]·[K, N]), and a batch-shared left operand is moved to the right of the transposed product
 * (out[i]ᵀ = b[i]ᵀ·aᵀ, again one [B·N, K]·[K, M] matmul). Only a matmul with both operands batched still takes
 * the stock path.
 */
import { broadcast_util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { call, release, reshape, sizeOf, type Info } from './wasm_util.ts';

/**
 * Our route copies operands (transposes run at only ~0.1-0.5 GB/s in wasm); the stock scalar loop does ~1 GFLOP/s.
 * For small products (a GroupNorm sum: ones[1,1,1024]·x[32,1024,16] is 1 MFLOP over a 0.5 M-element operand) the
 * copies cost more than the loop: measured 0.7 ms stock vs 11 ms routed. Constants from bench/roofline.ts.
 */
export type MatMulRouting = 'auto' | 'always';
let routing: MatMulRouting = 'auto';
/** 'always' skips the cost model (tests use it to exercise the routed paths on small shapes) */
export function setMatMulRouting(r: MatMulRouting): void { routing = r; }

function preferStock(batchA: number, batchB: number, m: number, k: number, n: number, tA: boolean, tB: boolean): boolean {
  if (routing === 'always') return false;
  const flops = 2 * Math.max(batchA, batchB) * m * k * n;
  let copied = 0;
  if (batchB > 1 && batchA === 1) copied += batchB * k * n + m * k; // both operands transposed
  else {
    if (tA) copied += batchA * m * k;
    if (tB) copied += batchB * k * n;
  }
  const stockMs = flops / 1e6; // ~1 GFLOP/s
  const oursMs = flops / 8e6 + copied / 1e5; // ~8 GFLOP/s XNNPACK + ~100 M elements/s copied
  return stockMs < oursMs;
}

export function batchMatMulWasm(
  stock: KernelFunc, backend: BackendWasm, a: Info, b: Info, transposeA: boolean, transposeB: boolean,
): Info {
  const outerA = a.shape.slice(0, -2), outerB = b.shape.slice(0, -2);
  const batchA = sizeOf(outerA), batchB = sizeOf(outerB);
  const runStock = (x: Info, y: Info, tA: boolean, tB: boolean): Info => stock(
    { inputs: { a: x, b: y }, backend, attrs: { transposeA: tA, transposeB: tB } } as never) as Info;
  if (batchA > 1 && batchB > 1) return runStock(a, b, transposeA, transposeB);

  const outBatch = broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const [ra, ca] = a.shape.slice(-2), [rb, cb] = b.shape.slice(-2);
  const [m, k] = transposeA ? [ca, ra] : [ra, ca];
  const n = transposeB ? rb : cb;
  const kb = transposeB ? cb : rb;
  if (k !== kb) {
    throw new Error(`Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ` +
      `${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`);
  }
  if (!transposeA && !transposeB && batchA === 1 && batchB === 1) return runStock(a, b, false, false);
  if (preferStock(batchA, batchB, m, k, n, transposeA, transposeB)) return runStock(a, b, transposeA, transposeB);

  const owned: Info[] = [];
  const keep = (t: Info): Info => { owned.push(t); return t; };
  try {
    // plain [batch, rows, cols] operands, transposes materialised
    let a3 = keep(reshape(backend, a, [batchA, ra, ca]));
    if (transposeA) a3 = keep(call('Transpose', backend, { x: a3 }, { perm: [0, 2, 1] }));
    let b3 = keep(reshape(backend, b, [batchB, rb, cb]));
    if (transposeB) b3 = keep(call('Transpose', backend, { x: b3 }, { perm: [0, 2, 1] }));

    let out: Info;
    if (batchB === 1) {
      const rows = keep(reshape(backend, a3, [1, batchA * m, k]));
      out = runStock(rows, b3, false, false);
    } else {
      // a shared: out[i]ᵀ = b[i]ᵀ·aᵀ, all batches as rows of one matmul whose right operand (aᵀ, [K, M]) is
      // small: XNNPACK packs the right operand on every new tensor, and packing b would cost more than the product
      const bT = keep(call('Transpose', backend, { x: b3 }, { perm: [0, 2, 1] }));
      const rows = keep(reshape(backend, bT, [1, batchB * n, k]));
      const aT = keep(call('Transpose', backend, { x: a3 }, { perm: [0, 2, 1] }));
      const prod = keep(runStock(rows, aT, false, false));
      const bnm = keep(reshape(backend, prod, [batchB, n, m]));
      out = m === 1 ? reshape(backend, bnm, [batchB, 1, n]) : call('Transpose', backend, { x: bnm }, { perm: [0, 2, 1] });
    }
    const shaped = reshape(backend, out, [...outBatch, m, n]);
    release(backend, out);
    return shaped;
  } finally {
    release(backend, ...owned);
  }
}

export function batchMatMulWasmConfig(stockConfig: KernelConfig): KernelConfig {
  const stock = stockConfig.kernelFunc;
  return {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    setupFunc: stockConfig.setupFunc,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      return batchMatMulWasm(stock, backend as unknown as BackendWasm, inputs.a as TensorInfo, inputs.b as TensorInfo,
        !!transposeA, !!transposeB);
    },
  };
}
