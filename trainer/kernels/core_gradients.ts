/**
 * Loads tfjs-core's own gradient definitions (`tf.grad` needs them) and its chained ops (`x.reshape(...)`; some of
 * core's own gradients call them, e.g. gather with batchDims).
 *
 * Why this file exists: the full `@tensorflow/tfjs` package registers the gradients; `@tensorflow/tfjs-core`
 * alone does not, and its Node entry point (a CommonJS bundle) does not contain them at all. They only ship as
 * the ESM sources under `dist/gradients/`, whose relative imports have no file extension (`'../ops/mul'`),
 * which Node's ESM loader refuses. We install a narrow resolve hook that appends `.js` to extension-less
 * relative specifiers *inside tfjs-core's dist folder only*, then import `register_all_gradients.js`.
 *
 * That ESM copy of tfjs-core is a second module instance, but tfjs keeps the engine, the environment and the
 * kernel/gradient registries on a global object, and `Tensor` uses a duck-typed `instanceof`, so the gradient
 * functions it registers run on the same engine as everything else.
 */
import { register } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';

const RESOLVE_HOOK = `
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  if (parent && parent.includes('/@tensorflow/tfjs-core/dist/')
      && (specifier.startsWith('./') || specifier.startsWith('../')) && !specifier.endsWith('.js')) {
    for (const suffix of ['.js', '/index.js']) {
      const url = new URL(specifier + suffix, parent);
      if (existsSync(fileURLToPath(url))) return nextResolve(url.href, context);
    }
  }
  return nextResolve(specifier, context);
}`;

let loading: Promise<void> | null = null;

/** True once gradients for the core ops are registered (by us, or by a full tfjs / tfjs-node import). */
export function coreGradientsLoaded(): boolean {
  // Relu and Conv2D stand in for the set: register_all_gradients registers all or nothing.
  return tf.getGradient('Relu') != null && tf.getGradient('Conv2D') != null;
}

/** Idempotent; safe to call from every entry point. */
export function loadCoreGradients(): Promise<void> {
  loading ??= (async () => {
    const grads = coreGradientsLoaded();
    // Checked apart: @tensorflow/tfjs-layers registers core's gradients on import but not the chained ops.
    const chained = typeof (tf.Tensor.prototype as unknown as { slice?: unknown }).slice === 'function';
    if (grads && chained) return;
    register('data:text/javascript,' + encodeURIComponent(RESOLVE_HOOK));
    if (!grads) await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
    // patches the global (shared) Tensor class, as the full @tensorflow/tfjs package does
    if (!chained) await import('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js');
    if (!coreGradientsLoaded()) {
      throw new Error('tfjs-core gradients did not register (import of dist/register_all_gradients.js had no effect)');
    }
  })();
  return loading;
}
