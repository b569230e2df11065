/**
 * Backend selection: forced backends, auto order, missing optional packages and their error messages.
 */
import { describe, expect, test } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { availableBackends, initBackend, type BackendChoice } from '../trainer/backend.ts';
import { UserError } from '../manifests/errors.ts';

const installed = (pkg: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const HAS_NODE_GPU = installed('@tensorflow/tfjs-node-gpu');
const HAS_NODE = installed('@tensorflow/tfjs-node');
const quiet = { log: (): void => undefined };

describe('initBackend', () => {
  test('wasm: active, our kernels registered, gradients available', async () => {
    const info = await initBackend({ backend: 'wasm', ...quiet });
    expect(info.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.reason).toMatch(/wasm/);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    // d/dw Σ conv(x, w) on a 1x1 kernel is Σ x: needs the wasm filter gradient and tfjs-core's Conv2D gradient
    const g = tf.tidy(() => Array.from(tf.grad((w: tf.Tensor) =>
      tf.sum(tf.conv2d(tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]), w as tf.Tensor4D, 1, 'valid')))(tf.ones([1, 1, 1, 1])).dataSync()));
    expect(g).toEqual([10]);
  });

  test('cpu: active and differentiable', async () => {
    const info = await initBackend({ backend: 'cpu', ...quiet });
    expect(info.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    const g = tf.tidy(() => Array.from(tf.grad((x: tf.Tensor) => tf.sum(tf.square(x)))(tf.tensor1d([1, -2])).dataSync()));
    expect(g).toEqual([2, -4]);
  });

  test('auto picks the first available of tfjs-node-gpu, tfjs-node, wasm', async () => {
    const lines: string[] = [];
    const info = await initBackend({ backend: 'auto', log: (l) => lines.push(l) });
    if (!HAS_NODE_GPU && !HAS_NODE) {
      expect(info.name).toBe('wasm');
      expect(info.reason).toContain('@tensorflow/tfjs-node-gpu not installed');
      expect(info.reason).toContain('@tensorflow/tfjs-node not installed');
    } else {
      expect(info.name).toBe('tensorflow');
    }
    expect(tf.getBackend()).toBe(info.name);
  });

  test.skipIf(HAS_NODE)('--backend tensorflow without tfjs-node: UserError naming the package, the install and the offline option', async () => {
    const err = await initBackend({ backend: 'tensorflow', ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    const msg = (err as Error).message;
    expect(msg).toContain('@tensorflow/tfjs-node');
    expect(msg).toContain('not installed');
    expect(msg).toContain('npm install @tensorflow/tfjs-node');
    expect(msg).toContain('--backend wasm');
  });

  test.skipIf(HAS_NODE_GPU)('--backend tensorflow-gpu without tfjs-node-gpu: says network access and CUDA are needed', async () => {
    const err = await initBackend({ backend: 'tensorflow-gpu', ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    const msg = (err as Error).message;
    expect(msg).toContain('npm install @tensorflow/tfjs-node-gpu');
    expect(msg).toMatch(/network access/);
    expect(msg).toMatch(/CUDA 11/);
    expect(msg).toMatch(/cuDNN/);
    expect(msg).toContain('--backend wasm');
  });

  test('an unknown backend name is a UserError listing the choices', async () => {
    const err = await initBackend({ backend: 'webgl' as BackendChoice, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain('auto, tensorflow-gpu, tensorflow, wasm, cpu');
  });

  test('--threads on wasm under Node is reported as having no effect', async () => {
    const lines: string[] = [];
    await initBackend({ backend: 'wasm', threads: 2, log: (l) => lines.push(l) });
    expect(lines.some((l) => l.includes('--threads 2 has no effect'))).toBe(true);
  });
});

describe('availableBackends', () => {
  test('lists every choice; bundled ones available, node packages as installed', () => {
    const list = availableBackends();
    expect(list.map((b) => b.choice)).toEqual(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
    const by = Object.fromEntries(list.map((b) => [b.choice, b]));
    expect(by.wasm.available).toBe(true);
    expect(by.cpu.available).toBe(true);
    expect(by['tensorflow-gpu'].available).toBe(HAS_NODE_GPU);
    expect(by.tensorflow.available).toBe(HAS_NODE);
    if (!HAS_NODE) expect(by.tensorflow.detail).toContain('npm install @tensorflow/tfjs-node');
  });
});
