import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../trainer/backend.ts';
import { createModel, parameterSpecs, presetConfig, type Model, type ModelConfig } from '../trainer/model.ts';
import { loadModel, saveModel } from '../trainer/checkpoint.ts';
import { initModelConfig, initWeights } from '../trainer/weights/init.ts';
import { exportBytes, exportCheckpoint } from '../trainer/weights/export.ts';
import { checkpointDirOf } from '../trainer/weights/cli-export.ts';
import { MODEL_META_KEY } from '../trainer/weights/cfgen-meta.ts';
import { readNpzFile } from '../trainer/weights/npz.ts';
import { readSafetensorsFile } from '../trainer/weights/safetensors.ts';
import { timmNameToBit } from '../trainer/weights/bit-names.ts';
import { bitNameToTimm } from '../trainer/weights/write-timm.ts';
import { rngFor } from '../manifests/index.ts';
import { PROJECT_ROOT } from '../common/paths.ts';
import { bitToTimm } from './pretrained-fixture.ts';

/**
 * `cfgen export-weights` (trainer/weights/export.ts): our checkpoints written as Google's BiT .npz and timm's
 * .safetensors, and read back through `--init` into the same network.
 */

/** BiT-shaped: bottleneck units, 7×7/2 root with the padded max-pool, 32 groups. */
const TINY_BIT: ModelConfig = {
  name: 'resnetv2-11', rootWidth: 8, widths: [16, 32], depths: [1, 2], bottleneck: true, groups: 32, numClasses: 5,
  rootPool: true, rootKernel: 7, rootStride: 2, wsEps: 1e-10, gnEps: 1e-5,
};
/** Not BiT-shaped: no root pool, 8 groups, basic units; nothing in the tensors says so (the metadata does). */
const SMALL: ModelConfig = presetConfig('small', 3);
const SIZE = 32;

let dir: string;
let x: tf.Tensor4D;

function randomModel(c: ModelConfig, seed: number): Model {
  const m = createModel(c, seed, { zeroHead: false });
  m.variables.forEach((v, i) => {
    const rng = rngFor('export-test', seed, m.paramNames[i]);
    const isGamma = m.paramNames[i].endsWith('/gamma');
    tf.tidy(() => v.assign(tf.tensor(Float32Array.from({ length: v.size }, () => (isGamma ? 1 + 0.3 * rng.normal() : 0.3 * rng.normal())), v.shape)));
  });
  return m;
}
const logits = (m: Model): number[] => Array.from(tf.tidy(() => m.apply(x)).dataSync());
const maxDiff = (a: number[], b: number[]): number => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
const values = (m: Model): number[][] => m.variables.map((v) => Array.from(v.dataSync()));

async function fromInit(init: string, k: number, lines: string[] = []): Promise<Model> {
  const cfg = await initModelConfig({ init, preset: 'small', numClasses: k }, (l) => lines.push(l));
  const m = createModel(cfg, 99);
  await initWeights(m, init, (l) => lines.push(l));
  return m;
}

beforeAll(async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  dir = await mkdtemp(join(tmpdir(), 'export-weights-'));
  x = tf.tidy(() => tf.sub(tf.mul(tf.tensor4d(Float32Array.from({ length: 2 * SIZE * SIZE * 3 }, (_, i) => ((i * 7919) % 1000) / 1000), [2, SIZE, SIZE, 3]), 2), 1) as tf.Tensor4D);
});

describe.each([['BiT-shaped', TINY_BIT], ['small (not BiT-shaped)', SMALL]] as const)('export a %s checkpoint, --init from it', (label, config) => {
  it('as .npz (stored and deflated) and .safetensors: same config, bit-identical weights, forward within 1e-5 of the checkpoint', async () => {
    const src = randomModel(config, 1);
    const ck = join(dir, `ck-${config.name}`);
    await saveModel(src, ck);
    src.dispose();
    const ref = await loadModel(ck);
    const files = [`${config.name}.npz`, `${config.name}-z.npz`, `${config.name}.safetensors`].map((f) => join(dir, f));
    await exportCheckpoint(ck, files[0], 'npz');
    await exportCheckpoint(ck, files[1], 'npz', { compress: true });
    await exportCheckpoint(ck, files[2], 'safetensors');
    const models = await Promise.all(files.map((f) => fromInit(f, config.numClasses)));
    for (const m of models) {
      // the metadata's config, not BiT's assumptions (root pool, 32 groups, timm's ε 1e-8)
      expect(m.config, label).toEqual(ref.config);
      expect(maxDiff(logits(m), logits(ref))).toBeLessThan(1e-5);
      expect(values(m)).toEqual(values(ref));
    }
    models.forEach((m) => m.dispose());
    ref.dispose();
  });
});

describe('the exact file formats', () => {
  let ck: string;
  beforeAll(async () => {
    const m = randomModel(SMALL, 2);
    ck = join(dir, 'ck-formats');
    await saveModel(m, ck);
    m.dispose();
  });

  it('.npz: numpy.savez layout, BiT names in parameter order, HWIO float32 .npy, the config in the zip comment', async () => {
    const out = join(dir, 'formats.npz');
    const r = await exportCheckpoint(ck, out, 'npz');
    const bytes = await readFile(out);
    expect(bytes.readUInt32LE(0)).toBe(0x04034b50);
    expect(bytes.readUInt16LE(4)).toBe(45); // zip64 local header, as numpy forces
    const { arrays, comment } = await readNpzFile(out);
    expect([...arrays.keys()]).toEqual(parameterSpecs(SMALL).map((s) => s.name));
    expect(arrays.get('resnet/root_block/standardized_conv2d/kernel')!.shape).toEqual([3, 3, 3, 16]);
    expect(arrays.get('resnet/root_block/standardized_conv2d/kernel')!.descr).toBe('<f4');
    expect(arrays.get('resnet/head/conv2d/kernel')!.shape).toEqual([1, 1, 64, 3]);
    expect(JSON.parse(JSON.parse(comment)[MODEL_META_KEY])).toMatchObject({ name: 'small', groups: 8, rootPool: false, numClasses: 3 });
    expect(r).toMatchObject({ tensors: parameterSpecs(SMALL).length, bytes: bytes.length });
    // one checkpoint always gives the same bytes
    await exportCheckpoint(ck, join(dir, 'again.npz'), 'npz');
    expect((await readFile(join(dir, 'again.npz'))).equals(bytes)).toBe(true);
  });

  it('.safetensors: timm names and OIHW kernels, 8-byte aligned header, timm\'s "format": "pt" metadata plus ours', async () => {
    const out = join(dir, 'formats.safetensors');
    await exportCheckpoint(ck, out, 'safetensors');
    const bytes = await readFile(out);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
    expect(header['stem.conv.weight']).toMatchObject({ dtype: 'F32', shape: [16, 3, 3, 3] });
    expect(header['stages.1.blocks.0.downsample.conv.weight'].shape).toEqual([32, 16, 1, 1]);
    expect(header['stages.2.blocks.0.norm2.weight'].shape).toEqual([64]);
    expect(header['head.fc.weight'].shape).toEqual([3, 64, 1, 1]);
    const { tensors, metadata } = await readSafetensorsFile(out);
    expect(metadata.format).toBe('pt');
    expect(JSON.parse(metadata[MODEL_META_KEY]).name).toBe('small');
    expect([...tensors.keys()]).toEqual([...tensors.keys()].sort()); // laid out by name, as safetensors does
    // OIHW: stem.conv.weight[o, i, h, w] is the checkpoint's kernel[h, w, i, o]
    const ref = await loadModel(ck);
    const hwio = ref.variables[0].dataSync();
    const oihw = tensors.get('stem.conv.weight')!.values;
    expect(oihw[((5 * 3 + 2) * 3 + 1) * 3 + 0]).toBe(hwio[((1 * 3 + 0) * 3 + 2) * 16 + 5]);
    ref.dispose();
  });

  it('name maps: BiT → timm → BiT is the identity on r50x1 and small, and agrees with a third spelling', () => {
    for (const c of [presetConfig('r50x1', 10), SMALL]) {
      for (const s of parameterSpecs(c)) {
        const t = bitNameToTimm(s.name)!;
        expect(t).toBe(bitToTimm(s.name));
        expect(timmNameToBit(t)).toBe(s.name);
      }
    }
    expect(bitNameToTimm('resnet/block4/unit03/c/group_norm/beta')).toBe('stages.3.blocks.2.norm3.bias');
    expect(bitNameToTimm('global_step')).toBeNull();
  });
});

describe('errors', () => {
  it('a file name without the format\'s extension, --compress on safetensors, a backbone model, a damaged metadata', async () => {
    const m = randomModel(SMALL, 3);
    const ck = join(dir, 'ck-errors');
    await saveModel(m, ck);
    await expect(exportCheckpoint(ck, join(dir, 'w.bin'), 'npz')).rejects.toThrow(/does not end in \.npz[\s\S]*fix: name it <something>\.npz/);
    await expect(exportCheckpoint(ck, join(dir, 'w.safetensors'), 'safetensors', { compress: true })).rejects.toThrow(/--compress applies to \.npz only/);
    const weights = m.paramNames.map((name, i) => ({ name, shape: m.variables[i].shape, values: m.variables[i].dataSync() as Float32Array }));
    const bb = { ...SMALL, backbone: { dir: '/x', cut: 'pool', features: 8, card: { inputSize: 32, range: [-1, 1] as [number, number], mean: [0, 0, 0] as [number, number, number], std: [1, 1, 1] as [number, number, number], channelOrder: 'RGB' as const } } };
    expect(() => exportBytes(bb, weights, 'npz')).toThrow(/not a ResNetV2/);
    expect(() => exportBytes(SMALL, weights.slice(1), 'npz')).toThrow(/missing resnet\/root_block/);
    // metadata that contradicts the tensors is refused, naming both
    const lie = exportBytes(SMALL, weights, 'safetensors').toString('latin1').replace('\\"widths\\":[16,32,64]', '\\"widths\\":[16,32,65]');
    await writeFile(join(dir, 'lie.safetensors'), Buffer.from(lie, 'latin1'));
    await expect(initModelConfig({ init: join(dir, 'lie.safetensors'), preset: 'small', numClasses: 3 })).rejects.toThrow(/metadata does not describe its tensors: stage widths 16\/32\/65 in the metadata, 16\/32\/64 in the tensors/);
    m.dispose();
  });

  it('--run resolves a checkpoint folder, a run\'s best checkpoint, and says when there is none', async () => {
    const ck = join(dir, 'ck-errors');
    expect(await checkpointDirOf(ck, dir, 'best')).toBe(ck);
    const run = join(dir, 'runs', 'r1');
    await mkdir(join(run, 'best'), { recursive: true });
    await writeFile(join(run, 'config.json'), '{}');
    await expect(checkpointDirOf('r1', join(dir, 'runs'), 'best')).rejects.toThrow(/the run has no best checkpoint yet/);
    await writeFile(join(run, 'best', 'model.json'), await readFile(join(ck, 'model.json')));
    expect(await checkpointDirOf('r1', join(dir, 'runs'), 'best')).toBe(join(run, 'best'));
    await expect(checkpointDirOf(join(dir, 'nowhere'), dir, 'best')).rejects.toThrow(/neither a training run/);
  });
});

describe('cfgen export-weights', () => {
  const cli = (args: string[]) => promisify(execFile)(join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx'), [join(PROJECT_ROOT, 'cfgen.ts'), 'export-weights', ...args], { cwd: dir });

  it('writes the file --init reads, and refuses a format its name contradicts', async () => {
    const ck = join(dir, 'ck-cli');
    const m = randomModel(SMALL, 4);
    await saveModel(m, ck);
    m.dispose();
    const out = join(dir, 'cli', 'w.safetensors');
    const r = await cli(['--run', ck, '--out', out]);
    expect(r.stdout).toMatch(/wrote .*w\.safetensors: 25 tensors, .* timm \.safetensors, sha256 [0-9a-f]{64}/);
    expect(r.stdout).toContain(`train --init ${out}`);
    expect((await initModelConfig({ init: out, preset: 'tiny', numClasses: 3 })).name).toBe('small');
    const bad = await cli(['--run', ck, '--out', out, '--format', 'npz']).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(bad?.code).toBe(2);
    expect(bad?.stderr).toMatch(/does not end in \.npz/);
  });
});
