/**
 * tfjs backend selection.
 *
 * Order for 'auto': @tensorflow/tfjs-node-gpu → @tensorflow/tfjs-node → wasm → cpu. The two tfjs-node packages
 * are optional extras (their install script downloads libtensorflow, so they need network access at install
 * time) and are not dependencies of this project; they are loaded with a dynamic import so that a missing one is
 * simply skipped. wasm and cpu ship with the project and always work offline.
 *
 * Every path also loads tfjs-core's gradients (tfjs-core alone registers none) and our extra gradients for
 * double backprop; the wasm path registers our wasm kernels (see trainer/kernels/ and docs/backends-and-kernels.md).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { UserError } from '../manifests/errors.ts';
import { loadCoreGradients } from './kernels/core_gradients.ts';
import { registerExtraGradients, registerWasmKernels } from './kernels/index.ts';

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface InitBackendOptions {
  backend?: BackendChoice;
  /** worker threads for the backend; tfjs-node reads it as TF's intra-op thread count (see docs/backends-and-kernels.md) */
  threads?: number;
  log?: (line: string) => void;
}

export interface BackendInfo {
  /** the tfjs backend name now active: 'tensorflow' | 'wasm' | 'cpu' */
  name: string;
  /** why this one, in words (for logs and run records) */
  reason: string;
}

const NODE_PACKAGES = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;
type NodeChoice = keyof typeof NODE_PACKAGES;

const WASM_HINT = '`--backend wasm` needs no extra package and works offline (about 40x faster than `--backend cpu`).';

function installHint(choice: NodeChoice): string {
  const pkg = NODE_PACKAGES[choice];
  if (choice === 'tensorflow-gpu') {
    return `npm install ${pkg}  (needs network access: its install script downloads libtensorflow with GPU support; ` +
      'at run time it needs an NVIDIA driver with CUDA 11.x and cuDNN 8 on the library path, see the tfjs-node-gpu ' +
      `README for the exact versions). ${WASM_HINT}`;
  }
  return `npm install ${pkg}  (needs network access: its install script downloads libtensorflow for this CPU). ${WASM_HINT}`;
}

/** Resolvable from here, i.e. installed? (Does not load it: loading tfjs-node starts libtensorflow.) */
function isInstalled(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

function isModuleNotFound(err: unknown, pkg: string): boolean {
  const e = err as { code?: string; message?: string };
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && String(e.message).includes(pkg);
}

/**
 * Loads tfjs-node(-gpu) and activates its 'tensorflow' backend. Throws UserError when the package is missing,
 * Error when it is installed but fails to load (e.g. missing CUDA libraries).
 */
async function useNode(choice: NodeChoice, threads: number | undefined, log: (s: string) => void): Promise<BackendInfo> {
  const pkg = NODE_PACKAGES[choice];
  if (threads && process.env.TF_NUM_INTRAOP_THREADS === undefined) {
    // read by libtensorflow when it creates its thread pools, i.e. at load time
    process.env.TF_NUM_INTRAOP_THREADS = String(threads);
  }
  try {
    await import(pkg);
  } catch (err) {
    if (isModuleNotFound(err, pkg)) {
      throw new UserError(`--backend ${choice} needs the optional package ${pkg}, which is not installed.`,
        { fix: installHint(choice) });
    }
    throw new Error(`${pkg} is installed but failed to load: ${(err as Error).message}`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but the 'tensorflow' backend did not initialise`);
  await tf.ready();
  if (choice === 'tensorflow') return { name: 'tensorflow', reason: `${pkg} (libtensorflow, CPU)` };
  // tfjs-node's backend exposes whether libtensorflow found a usable GPU
  const usingGpu = (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
  if (usingGpu === false) {
    log(`warning: ${pkg} is installed but TensorFlow found no usable CUDA GPU (no device, or driver/CUDA 11.x/cuDNN 8 ` +
      'libraries not found); it falls back to running on the CPU through libtensorflow, which is slower than a GPU ' +
      'but still faster than wasm. Check `nvidia-smi` and LD_LIBRARY_PATH.');
    return { name: 'tensorflow', reason: `${pkg} without a usable GPU: libtensorflow on the CPU` };
  }
  return { name: 'tensorflow', reason: `${pkg} (libtensorflow, CUDA GPU)` };
}

async function useWasm(threads: number | undefined, log: (s: string) => void): Promise<BackendInfo> {
  registerWasmKernels();
  if (threads && threads > 1) {
    // only the threaded wasm binary uses it, and tfjs never picks that one under Node (docs/backends-and-kernels.md)
    setThreadsCount(threads);
    if (!(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'))) {
      log(`note: --threads ${threads} has no effect on the wasm backend under Node (tfjs loads its single-threaded build here)`);
    }
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise (see the tfjs warning above)');
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return { name: 'wasm', reason: `tfjs-backend-wasm (XNNPACK, ${simd ? 'SIMD' : 'no SIMD'}, 1 thread) with our extra kernels` };
}

async function useCpu(): Promise<BackendInfo> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
  await tf.ready();
  return { name: 'cpu', reason: 'tfjs-backend-cpu (plain JavaScript; slow, for reference and tests)' };
}

export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const choice = opts.backend ?? 'auto';
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new UserError(`unknown backend '${choice}'`, { fix: `use one of: ${BACKEND_CHOICES.join(', ')}` });
  }
  const info = await selectBackend(choice, opts, log);
  // after the backend: importing tfjs-node registers tfjs-core's gradients again, and the last registration wins
  await loadCoreGradients();
  registerExtraGradients();
  return info;
}

async function selectBackend(choice: BackendChoice, opts: InitBackendOptions, log: (s: string) => void): Promise<BackendInfo> {
  if (choice === 'tensorflow-gpu' || choice === 'tensorflow') return useNode(choice, opts.threads, log);
  if (choice === 'wasm') return useWasm(opts.threads, log);
  if (choice === 'cpu') return useCpu();

  const skipped: string[] = [];
  for (const c of ['tensorflow-gpu', 'tensorflow'] as const) {
    const pkg = NODE_PACKAGES[c];
    if (!isInstalled(pkg)) { skipped.push(`${pkg} not installed`); continue; }
    try {
      const info = await useNode(c, opts.threads, log);
      return { ...info, reason: `auto: ${info.reason}` };
    } catch (err) {
      log(`warning: ${(err as Error).message}; trying the next backend`);
      skipped.push(`${pkg} failed to load`);
    }
  }
  try {
    const info = await useWasm(opts.threads, log);
    return { ...info, reason: `auto: ${info.reason} (${skipped.join(', ')})` };
  } catch (err) {
    log(`warning: ${(err as Error).message}; falling back to the cpu backend`);
    const info = await useCpu();
    return { ...info, reason: `auto: ${info.reason} (${skipped.join(', ')}, wasm failed)` };
  }
}

export interface BackendAvailability {
  choice: Exclude<BackendChoice, 'auto'>;
  available: boolean;
  detail: string;
}

/** What `--backend` can use on this machine, without loading anything heavy (for --help and diagnostics). */
export function availableBackends(): BackendAvailability[] {
  const node = (choice: NodeChoice): BackendAvailability => {
    const pkg = NODE_PACKAGES[choice];
    return isInstalled(pkg)
      ? { choice, available: true, detail: `${pkg} installed${choice === 'tensorflow-gpu' ? ' (GPU use is checked at start-up)' : ''}` }
      : { choice, available: false, detail: `${pkg} not installed; ${installHint(choice).split('  (')[0]}` };
  };
  return [
    node('tensorflow-gpu'),
    node('tensorflow'),
    { choice: 'wasm', available: true, detail: 'tfjs-backend-wasm (bundled, offline, single-threaded under Node)' },
    { choice: 'cpu', available: true, detail: 'tfjs-backend-cpu (bundled, plain JavaScript, slow)' },
  ];
}
