/**
 * Kernel probe (developer bench): runs the ResNetV2 op patterns of trainer/kernels/probe_cases.ts forward,
 * backward and doubly backward on wasm and on the cpu reference, and lists missing kernels/gradients and mismatches.
 *
 *   npx tsx bench/kernels-probe.ts            # wasm with our extra kernels (expect: all ok)
 *   npx tsx bench/kernels-probe.ts --stock    # wasm as shipped (lists what is missing or wrong)
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { loadCoreGradients } from '../trainer/kernels/core_gradients.ts';
import { registerExtraGradients, registerWasmKernels } from '../trainer/kernels/index.ts';
import { missingPieces, probe } from '../trainer/kernels/probe.ts';
import { probeCases } from '../trainer/kernels/probe_cases.ts';

const stock = process.argv.includes('--stock');
const tolerance = 1e-4;
await loadCoreGradients();
if (!stock) {
  registerWasmKernels();
  registerExtraGradients();
}
await tf.setBackend('wasm');
const results = await probe('wasm', probeCases());
let bad = 0;
for (const r of results) {
  const ok = r.error === undefined && (r.relErr ?? 0) <= tolerance;
  if (!ok) bad++;
  const what = r.error ?? `rel err ${(r.relErr ?? 0).toExponential(1)}`;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${r.case.padEnd(38)} ${r.stage.padEnd(8)} ${what}`);
}
console.log(`\n${results.length - bad}/${results.length} stages match cpu within ${tolerance} (wasm${stock ? ', stock kernels' : ', with trainer/kernels'})`);
const missing = missingPieces(results);
if (missing.length) console.log('missing:\n  ' + missing.join('\n  '));
process.exitCode = bad ? 1 : 0;
