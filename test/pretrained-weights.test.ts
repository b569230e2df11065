import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../trainer/backend.ts';
import { createModel, type Model, type ModelConfig } from '../trainer/model.ts';
import { loadModel, saveModel } from '../trainer/checkpoint.ts';
import { initModelConfig, initWeights } from '../trainer/weights/init.ts';
import { parseNpy } from '../trainer/weights/npy.ts';
import { rngFor } from '../manifests/index.ts';
import { bitToTimm, hwioToOihw, npyBytes, writeNpz, writeSafetensors } from './pretrained-fixture.ts';

/** A BiT-shaped network small enough for a test: bottleneck units, 7×7/2 root with the padded max-pool. */
const TINY_BIT: ModelConfig = {
  name: 'resnetv2-11', rootWidth: 8, widths: [16, 32], depths: [1, 2], bottleneck: true, groups: 32, numClasses: 5,
  rootPool: true, rootKernel: 7, rootStride: 2, wsEps: 1e-10, gnEps: 1e-5,
};
const SIZE = 32;

let dir: string;
let source: Model;
let x: tf.Tensor4D;

/** every parameter random (GN γ/β too, so swapping them would show) */
function randomise(m: Model, seed: number): void {
  m.variables.forEach((v, i) => {
    const rng = rngFor('pretrained-test', seed, m.paramNames[i]);
    const isGamma = m.paramNames[i].endsWith('/gamma');
    const vals = Float32Array.from({ length: v.size }, () => (isGamma ? 1 + 0.3 * rng.normal() : 0.3 * rng.normal()));
    tf.tidy(() => v.assign(tf.tensor(vals, v.shape)));
  });
}
const arraysOf = (m: Model) => m.paramNames.map((name, i) => ({ name, shape: m.variables[i].shape, values: m.variables[i].dataSync() as Float32Array }));
const timmArraysOf = (m: Model) => arraysOf(m).map((a) => (a.shape.length === 4 ? { name: bitToTimm(a.name), ...hwioToOihw(a.values, a.shape) } : { ...a, name: bitToTimm(a.name) }));
const logits = (m: Model): number[] => Array.from(tf.tidy(() => m.apply(x)).dataSync());
const maxDiff = (a: number[], b: number[]): number => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

async function fromInit(init: string, k: number, lines: string[] = []): Promise<Model> {
  const cfg = await initModelConfig({ init, preset: 'r50x1', numClasses: k }, (l) => lines.push(l));
  const m = createModel(cfg, 99);
  await initWeights(m, init, (l) => lines.push(l));
  return m;
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  dir = await mkdtemp(join(tmpdir(), 'pretrained-'));
  source = createModel(TINY_BIT, 1, { zeroHead: false });
  randomise(source, 1);
  x = tf.tidy(() => tf.sub(tf.mul(tf.tensor4d(Float32Array.from({ length: 2 * SIZE * SIZE * 3 }, (_, i) => ((i * 7919) % 1000) / 1000), [2, SIZE, SIZE, 3]), 2), 1) as tf.Tensor4D);
  await writeNpz(join(dir, 'BiT-tiny.npz'), arraysOf(source));
  await writeNpz(join(dir, 'BiT-tiny-deflated.npz'), arraysOf(source), true);
  await writeSafetensors(join(dir, 'model.safetensors'), timmArraysOf(source));
});

describe('.npy', () => {
  it('reads numpy\'s v1.0 header (64-byte aligned) and data; refuses non-float dtypes and truncation', () => {
    const b = npyBytes(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    expect((b.readUInt16LE(8) + 10) % 64).toBe(0);
    const a = parseNpy(b);
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.values)).toEqual([1, 2, 3, 4, 5, 6]);
    const i8 = Buffer.from(b); i8.write("'<i8'", b.indexOf("'<f4'"), 'latin1');
    expect(() => parseNpy(i8)).toThrow(/not a floating-point type/);
    expect(() => parseNpy(b.subarray(0, b.length - 4))).toThrow(/truncated data/);
    // Fortran order is transposed back to C order
    const f = Buffer.from(b); f.write('True ', b.indexOf('False'), 'latin1');
    expect(Array.from(parseNpy(f).values)).toEqual([1, 3, 5, 2, 4, 6]);
  });
});

describe('--init with Google\'s BiT .npz', () => {
  it('reads the architecture from the file and gives the forward of the same weights through our checkpoint', async () => {
    await saveModel(source, join(dir, 'ckpt'));
    const ref = await loadModel(join(dir, 'ckpt'));
    const lines: string[] = [];
    for (const file of ['BiT-tiny.npz', 'BiT-tiny-deflated.npz']) {
      const m = await fromInit(join(dir, file), 5, lines);
      expect(m.config).toMatchObject({ widths: [16, 32], depths: [1, 2], rootWidth: 8, bottleneck: true, rootKernel: 7, wsEps: 1e-10 });
      expect(maxDiff(logits(m), logits(ref))).toBeLessThan(1e-5);
      m.dispose();
    }
    expect(lines.some((l) => /architecture from .*: resnetv2-11/.test(l))).toBe(true);
    expect(lines.some((l) => /head replaced/.test(l))).toBe(false);
    ref.dispose();
  });

  it('replaces the head when the class count differs, and says so', async () => {
    const lines: string[] = [];
    const m = await fromInit(join(dir, 'BiT-tiny.npz'), 2, lines);
    expect(lines.join('\n')).toMatch(/head replaced: the file's has 5 classes, this run 2/);
    expect(logits(m).every((v) => v === 0)).toBe(true); // BiT's zero head
    // the body is loaded: its root kernel equals the source's
    expect(Array.from(m.variables[0].dataSync())).toEqual(Array.from(source.variables[0].dataSync()));
    m.dispose();
  });

  it('names BiT-M-R50x1 r50x1 with its 21843-class head', async () => {
    const { inferArchitecture } = await import('../trainer/weights/bit-names.ts');
    const { parameterSpecs, presetConfig } = await import('../trainer/model-config.ts');
    const shapes = new Map(parameterSpecs(presetConfig('r50x1', 21843)).map((s) => [s.name, s.shape]));
    const a = inferArchitecture(shapes, { wsEps: 1e-10, gnEps: 1e-5 });
    expect(a.headClasses).toBe(21843);
    expect(a.config).toMatchObject({ name: 'r50x1', widths: [256, 512, 1024, 2048], depths: [3, 4, 6, 3], rootWidth: 64 });
    const r101x3 = new Map(parameterSpecs({ ...presetConfig('r50x1', 10), rootWidth: 192, widths: [768, 1536, 3072, 6144], depths: [3, 4, 23, 3] }).map((s) => [s.name, s.shape]));
    expect(inferArchitecture(r101x3, { wsEps: 1e-10, gnEps: 1e-5 }).config.name).toBe('r101x3');
  });
});

describe('--init with timm\'s model.safetensors', () => {
  it('maps timm names, transposes OIHW, uses timm\'s ε 1e-8, and matches our checkpoint of the same weights', async () => {
    const timmCfg = { ...TINY_BIT, wsEps: 1e-8 };
    const same = createModel(timmCfg, 2);
    same.variables.forEach((v, i) => v.assign(source.variables[i]));
    await saveModel(same, join(dir, 'ckpt-timm'));
    same.dispose();
    const ref = await loadModel(join(dir, 'ckpt-timm'));
    const lines: string[] = [];
    const m = await fromInit(join(dir, 'model.safetensors'), 5, lines);
    expect(m.config.wsEps).toBe(1e-8);
    expect(maxDiff(logits(m), logits(ref))).toBeLessThan(1e-5);
    m.dispose();
    // a Hugging Face snapshot folder (model.safetensors beside config.json) works too
    await mkdir(join(dir, 'hf'), { recursive: true });
    await writeFile(join(dir, 'hf', 'model.safetensors'), await readFile(join(dir, 'model.safetensors')));
    await writeFile(join(dir, 'hf', 'config.json'), '{"architecture": "resnetv2_50x1_bit"}');
    const h = await fromInit(join(dir, 'hf'), 5);
    expect(maxDiff(logits(h), logits(ref))).toBeLessThan(1e-5);
    h.dispose();
    ref.dispose();
  });
});

describe('bad files give clear errors and no partial model', () => {
  async function expectError(file: string, pattern: RegExp): Promise<void> {
    const m = createModel(TINY_BIT, 3);
    const before = m.variables.map((v) => Array.from(v.dataSync()));
    await expect((async () => { await initModelConfig({ init: file, preset: 'r50x1', numClasses: 5 }); await initWeights(m, file, () => undefined); })()).rejects.toThrow(pattern);
    // nothing was assigned
    m.variables.forEach((v, i) => expect(Array.from(v.dataSync())).toEqual(before[i]));
    m.dispose();
  }

  it('not a zip, a truncated .npz, a corrupt array', async () => {
    await writeFile(join(dir, 'garbage.npz'), Buffer.from('this is not a zip file at all, just text'));
    await expectError(join(dir, 'garbage.npz'), /not a readable \.npz \(zip\) file/);
    const good = await readFile(join(dir, 'BiT-tiny.npz'));
    await writeFile(join(dir, 'truncated.npz'), good.subarray(0, Math.floor(good.length / 2)));
    await expectError(join(dir, "truncated.npz"), /not a readable \.npz \(zip\) file: End of central directory record signature not found/);
    const corrupt = Buffer.from(good);
    corrupt.write('XXXXXX', corrupt.indexOf('NUMPY') - 1, 'latin1');
    await writeFile(join(dir, 'corrupt.npz'), corrupt);
    await expectError(join(dir, 'corrupt.npz'), /cannot read array resnet\/root_block\/standardized_conv2d\/kernel\.npy: not a \.npy array/);
    await expectError(join(dir, 'absent.npz'), /weights file not found/);
  });

  it('missing, unknown and mis-shaped tensors are named with what was expected', async () => {
    const arrays = arraysOf(source);
    await writeNpz(join(dir, 'missing.npz'), arrays.filter((a) => a.name !== 'resnet/block2/unit02/b/group_norm/beta'));
    await expectError(join(dir, 'missing.npz'), /missing resnet\/block2\/unit02\/b\/group_norm\/beta: expected shape \[8\]/);
    await writeNpz(join(dir, 'unknown.npz'), [...arrays, { name: 'global_step', shape: [1], values: Float32Array.from([3]) }]);
    await expectError(join(dir, 'unknown.npz'), /not part of a BiT ResNetV2: global_step \[1\]/);
    const wrong = arrays.map((a) => (a.name === 'resnet/block2/unit02/a/standardized_conv2d/kernel' ? { ...a, shape: [1, 1, 16, 8], values: new Float32Array(128) } : a));
    await writeNpz(join(dir, 'wrong-arch.npz'), wrong);
    await expectError(join(dir, 'wrong-arch.npz'), /resnet\/block2\/unit02\/a\/standardized_conv2d\/kernel has shape \[1, 1, 16, 8\], expected \[1, 1, 32, 8\]/);
    await writeSafetensors(join(dir, 'unknown.safetensors'), [...timmArraysOf(source), { name: 'fc.weight', shape: [2, 2], values: new Float32Array(4) }]);
    await expectError(join(dir, 'unknown.safetensors'), /not part of a BiT ResNetV2: fc\.weight \[2, 2\]/);
  });

  it('a truncated or garbage .safetensors', async () => {
    const good = await readFile(join(dir, 'model.safetensors'));
    await writeFile(join(dir, 'cut.safetensors'), good.subarray(0, good.length - 100));
    await expectError(join(dir, 'cut.safetensors'), /past the end of the .*-byte file \(truncated download\?\)/);
    await writeFile(join(dir, 'junk.safetensors'), Buffer.from('0123456789abcdef'));
    await expectError(join(dir, 'junk.safetensors'), /not a \.safetensors file/);
  });
});
