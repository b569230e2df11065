import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../trainer/backend.ts';
import { folderSaver } from '../trainer/backbone/io.ts';
import { backboneConfig } from '../trainer/backbone/model.ts';
import { buildModel } from '../trainer/model-build.ts';
import { parseMethod } from '../trainer/method.ts';
import { makeOptimizer } from '../trainer/optimizer-state.ts';
import { trainStep, type StepContext } from '../trainer/step.ts';
import { crossEntropy, counterfactualLoss, saliencyPenalty } from '../trainer/losses.ts';
import { syntheticBatch } from '../bench/synthetic-batch.ts';
import { rngFor } from '../manifests/index.ts';
import type { Model } from '../trainer/model.ts';

const normal = (key: string, shape: number[], scale = 1): tf.Tensor => {
  const rng = rngFor('backbone-test', key);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);
};
const rel = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-30));
};
async function onBoth(f: () => tf.Tensor[]): Promise<{ cpu: Float32Array[]; wasm: Float32Array[] }> {
  const run = async (b: string) => { await tf.setBackend(b); return tf.tidy(() => f().map((t) => Float32Array.from(t.dataSync()))); };
  const cpu = await run('cpu');
  const wasm = await run('wasm');
  return { cpu, wasm };
}

/**
 * A MobileNetV2-shaped network, as Keras builds it (inverted residuals: 1×1 expand → BN → ReLU6 → 3×3 depthwise →
 * BN → ReLU6 → 1×1 project → BN, + residual), small: 16 px input, a classifier on top that the cut removes.
 * `tanh` swaps the ReLU6s for a smooth activation: finite differences in float32 cannot resolve a ReLU6 network's
 * kinks, so the numeric gradient check runs on that twin (the ReLU6 one is checked against the cpu backend).
 */
function mobileNetV2Like(seed: number, act: 'relu6' | 'tanh' = 'relu6'): tfl.LayersModel {
  const init = (n: string) => tfl.initializers.randomNormal({ stddev: 0.3, seed: seed * 100 + n.length });
  const inp = tfl.input({ shape: [16, 16, 3] });
  let h = tfl.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: 'Conv1_pad' }).apply(inp) as tfl.SymbolicTensor;
  h = tfl.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, name: 'Conv1', kernelInitializer: init('Conv1') }).apply(h) as tfl.SymbolicTensor;
  const bn = (name: string) => tfl.layers.batchNormalization({ name, epsilon: 1e-3, momentum: 0.999,
    gammaInitializer: tfl.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: name.length }),
    betaInitializer: tfl.initializers.randomNormal({ stddev: 0.1, seed: name.length + 1 }),
    movingMeanInitializer: tfl.initializers.randomNormal({ stddev: 0.1, seed: name.length + 2 }),
    movingVarianceInitializer: tfl.initializers.randomUniform({ minval: 0.5, maxval: 2, seed: name.length + 3 }) });
  h = bn('bn_Conv1').apply(h) as tfl.SymbolicTensor;
  const relu6 = (name: string, layer = true) => (act === 'tanh' ? tfl.layers.activation({ activation: 'tanh', name })
    : layer ? tfl.layers.reLU({ maxValue: 6, name }) : tfl.layers.activation({ activation: 'relu6', name }));
  h = relu6('Conv1_relu').apply(h) as tfl.SymbolicTensor;
  const block = (x: tfl.SymbolicTensor, id: number, stride: number, out: number): tfl.SymbolicTensor => {
    const cin = x.shape[3] as number;
    let y = tfl.layers.conv2d({ filters: cin * 3, kernelSize: 1, useBias: false, name: `block_${id}_expand`, kernelInitializer: init(`e${id}`) }).apply(x) as tfl.SymbolicTensor;
    y = bn(`block_${id}_expand_BN`).apply(y) as tfl.SymbolicTensor;
    y = relu6(`block_${id}_expand_relu`).apply(y) as tfl.SymbolicTensor;
    y = tfl.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: 'same', useBias: false, name: `block_${id}_depthwise`, depthwiseInitializer: init(`d${id}`) }).apply(y) as tfl.SymbolicTensor;
    y = bn(`block_${id}_depthwise_BN`).apply(y) as tfl.SymbolicTensor;
    y = relu6(`block_${id}_depthwise_relu`, false).apply(y) as tfl.SymbolicTensor;
    y = tfl.layers.conv2d({ filters: out, kernelSize: 1, useBias: false, name: `block_${id}_project`, kernelInitializer: init(`p${id}`) }).apply(y) as tfl.SymbolicTensor;
    y = bn(`block_${id}_project_BN`).apply(y) as tfl.SymbolicTensor;
    return stride === 1 && cin === out ? tfl.layers.add({ name: `block_${id}_add` }).apply([x, y]) as tfl.SymbolicTensor : y;
  };
  h = block(h, 1, 1, 8);
  h = block(h, 2, 2, 12);
  h = tfl.layers.conv2d({ filters: 16, kernelSize: 1, useBias: true, name: 'Conv_1', kernelInitializer: init('C1') }).apply(h) as tfl.SymbolicTensor;
  h = relu6('out_relu').apply(h) as tfl.SymbolicTensor;
  h = tfl.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }).apply(h) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 10, activation: 'softmax', name: 'predictions' }).apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: inp, outputs: out, name: 'mobilenetv2_tiny' });
}

let dir: string;
beforeAll(async () => {
  await initBackend({ backend: 'wasm', log: () => undefined });
  dir = await mkdtemp(join(tmpdir(), 'backbone-'));
  const m = mobileNetV2Like(1);
  await m.save(folderSaver(join(dir, 'mnv2')));
  m.dispose();
  const smooth = mobileNetV2Like(2, 'tanh');
  await smooth.save(folderSaver(join(dir, 'mnv2-tanh')));
  smooth.dispose();
  for (const d of ['mnv2', 'mnv2-tanh']) {
    await writeFile(join(dir, d, 'card.json'), JSON.stringify({ inputSize: 16, range: [-1, 1], mean: [0, 0, 0], std: [1, 1, 1], channelOrder: 'RGB' }));
  }
});

describe('depthwise-conv gradient kernels (wasm) and their gradients', () => {
  const cases = [
    { x: [2, 7, 7, 3], f: [3, 3, 3, 1], strides: 1, pad: 'same' },
    { x: [1, 8, 8, 4], f: [3, 3, 4, 2], strides: 2, pad: 'same' },
    { x: [2, 9, 9, 2], f: [3, 3, 2, 1], strides: 2, pad: 'valid' },
  ];
  it('DepthwiseConv2dNativeBackpropInput / BackpropFilter on wasm equal the cpu backend', async () => {
    for (const c of cases) {
      const attrs = { strides: c.strides, pad: c.pad, dilations: 1 };
      const { cpu, wasm } = await onBoth(() => {
        const x = normal('x', c.x), w = normal('w', c.f);
        const y = tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides as 1, c.pad as 'same', 'NHWC', attrs.dilations as 1);
        const dy = normal('dy', y.shape);
        return [
          tf.engine().runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { ...attrs, inputShape: c.x } as unknown as tf.NamedAttrMap) as tf.Tensor,
          tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: c.f } as unknown as tf.NamedAttrMap) as tf.Tensor,
        ];
      });
      cpu.forEach((v, i) => expect(rel(wasm[i], v), `${JSON.stringify(c)} output ${i}`).toBeLessThan(1e-5));
    }
  });

  it('double backprop through a depthwise conv and ReLU6: wasm = cpu = finite differences', async () => {
    // P(w) = Σ (∂ Σ relu6(dw(x, w))·v / ∂x)²: its w-gradient runs both backprop kernels' gradients
    const penalty = (x: tf.Tensor4D, w: tf.Tensor4D, v: tf.Tensor): tf.Scalar => {
      const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.relu6(tf.depthwiseConv2d(xx as tf.Tensor4D, w, 2, 'same')), v)))(x);
      return tf.sum(tf.square(g));
    };
    const c = { x: [1, 6, 6, 2], f: [3, 3, 2, 2] };
    const { cpu, wasm } = await onBoth(() => {
      const x = tf.mul(normal('x2', c.x), 2) as tf.Tensor4D, w = normal('w2', c.f) as tf.Tensor4D, v = normal('v2', [1, 3, 3, 4]);
      return [tf.grad((ww: tf.Tensor) => penalty(x, ww as tf.Tensor4D, v))(w)];
    });
    expect(rel(wasm[0], cpu[0])).toBeLessThan(1e-5);
    // central differences on cpu along a direction
    await tf.setBackend('cpu');
    const fd = tf.tidy(() => {
      const x = tf.mul(normal('x2', c.x), 2) as tf.Tensor4D, w = normal('w2', c.f) as tf.Tensor4D, v = normal('v2', [1, 3, 3, 4]), d = normal('d2', c.f);
      const h = 1e-3;
      return (penalty(x, tf.add(w, tf.mul(d, h)) as tf.Tensor4D, v).dataSync()[0] - penalty(x, tf.sub(w, tf.mul(d, h)) as tf.Tensor4D, v).dataSync()[0]) / (2 * h)
        - tf.sum(tf.mul(tf.tensor(cpu[0], c.f), d)).dataSync()[0];
    });
    await tf.setBackend('wasm');
    expect(Math.abs(fd)).toBeLessThan(2e-2 * Math.max(1, Math.abs(cpu[0].reduce((a, b) => a + Math.abs(b), 0)) / cpu[0].length));
  });
});

describe('FusedBatchNorm gradient (ours: broadcasts instead of tiling)', () => {
  it('matches finite differences for x, mean, variance, scale and offset, on wasm and cpu alike', async () => {
    const f = (x: tf.Tensor, m: tf.Tensor, v: tf.Tensor, sc: tf.Tensor, o: tf.Tensor, w: tf.Tensor): tf.Scalar =>
      tf.sum(tf.mul(tf.batchNorm(x as tf.Tensor4D, m as tf.Tensor1D, v as tf.Tensor1D, o as tf.Tensor1D, sc as tf.Tensor1D, 1e-3), w));
    const inputs = (): tf.Tensor[] => [normal('bx', [2, 3, 3, 4]), normal('bm', [4], 0.3), tf.add(tf.abs(normal('bv', [4])), 0.5), normal('bs', [4]), normal('bo', [4]), normal('bw', [2, 3, 3, 4])];
    const { cpu, wasm } = await onBoth(() => {
      const t = inputs();
      return tf.grads((x, m, v, sc, o) => f(x, m, v, sc, o, t[5]))(t.slice(0, 5));
    });
    cpu.forEach((c, i) => expect(rel(wasm[i], c), `input ${i}`).toBeLessThan(1e-5));
    await tf.setBackend('cpu');
    tf.tidy(() => {
      const t = inputs();
      for (let k = 0; k < 5; k++) {
        const d = normal(`bd${k}`, t[k].shape, 0.1);
        const at = (h: number) => { const u = [...t]; u[k] = tf.add(t[k], tf.mul(d, h)); return f(u[0], u[1], u[2], u[3], u[4], t[5]).dataSync()[0]; };
        const fd = (at(1e-2) - at(-1e-2)) / 2e-2;
        const ad = tf.sum(tf.mul(tf.tensor(cpu[k], t[k].shape), d)).dataSync()[0];
        expect(Math.abs(fd - ad), `input ${k}: fd ${fd} ad ${ad}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(ad)));
      }
    });
    await tf.setBackend('wasm');
  });
});

describe('--backbone: a tfjs LayersModel as the feature extractor', () => {
  let model: Model;
  beforeAll(async () => {
    const cfg = await backboneConfig(join(dir, 'mnv2'), 3);
    expect(cfg.backbone).toMatchObject({ cut: 'global_average_pooling2d', features: 16 });
    model = await buildModel(cfg, 0);
    // a non-zero head, so every loss term has a gradient into the backbone
    model.variables[model.variables.length - 2].assign(normal('head', [16, 3], 0.5));
  });

  it('cuts before the classifier, freezes BN statistics, and takes the card\'s preprocessing', () => {
    expect(model.paramNames).toContain('block_2_depthwise/depthwise_kernel');
    expect(model.paramNames).not.toContain('predictions/kernel');
    expect(model.paramNames.some((n) => /moving/.test(n))).toBe(false);
    expect(model.paramNames.slice(-2)).toEqual(['head/kernel', 'head/bias']);
    // inference-mode BN: an image's logits do not depend on the rest of the batch
    const x = normal('imgs', [3, 16, 16, 3], 0.5) as tf.Tensor4D;
    const all = model.apply(x).arraySync() as number[][];
    const one = model.apply(tf.slice(x, [1, 0, 0, 0], [1, 16, 16, 3])).arraySync() as number[][];
    one[0].forEach((v, k) => expect(v).toBeCloseTo(all[1][k], 5));
    expect(() => model.apply(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D)).toThrow(/pass --size 16/);
  });

  it('trains one step with every loss (CE, CF, F, FGSM, saliency), leaving no tensors behind', () => {
    const batch = syntheticBatch('backbone', { size: 16, batch: 3, classes: 3, withGenerated: true });
    const ctx: StepContext = { model, optimizer: makeOptimizer({ optimizer: 'sgd', lr: 0.01, momentum: 0.9 }), method: parseMethod('cf-x+f-y+sal@1+f-fgsm@0.3'), cfLoss: 'logp', numClasses: 3, clipNorm: 1, weightDecay: 1e-4 };
    const before = model.variables.map((v) => Array.from(v.dataSync()));
    const st = trainStep(ctx, batch, 0);
    expect(st.skipped).toBe(false);
    expect(st.counts).toMatchObject({ orig: 3, cf: 3, f: 3, fgsm: 3, sal: 3 });
    for (const t of ['ce', 'cf', 'f', 'fgsm', 'sal'] as const) expect(st.terms[t], t).toBeGreaterThan(0);
    model.variables.forEach((v, i) => expect(Array.from(v.dataSync()).some((x, j) => x !== before[i][j]), model.paramNames[i]).toBe(true));
    const n0 = tf.memory().numTensors;
    trainStep(ctx, batch, 1);
    expect(tf.memory().numTensors).toBe(n0);
    ctx.optimizer.dispose();
  });

  it('its weight gradients of CE + CF + λ·saliency (double backprop) on wasm equal the cpu backend\'s', async () => {
    const grads = async (backend: string): Promise<Float32Array[]> => {
      await tf.setBackend(backend);
      return tf.tidy(() => {
        const x = normal('cmp-x', [2, 16, 16, 3], 0.6) as tf.Tensor4D;
        const y = tf.tensor1d([0, 2], 'int32');
        const bg = tf.cast(tf.greater(normal('cmp-bg', [2, 16, 16, 1]), 0), 'float32') as tf.Tensor4D;
        const { grads: g } = tf.variableGrads(() => objective(model, x, y, bg, 50), model.variables);
        return model.variables.map((v) => Float32Array.from(g[v.name].dataSync()));
      });
    };
    const cpu = await grads('cpu');
    const wasm = await grads('wasm');
    cpu.forEach((c, i) => expect(rel(wasm[i], c), model.paramNames[i]).toBeLessThan(1e-4));
  });
});

/** CE + CF over the batch + λ·Σ saliency penalties: every path of a step's objective, incl. double backprop */
function objective(m: Model, x: tf.Tensor4D, y: tf.Tensor1D, bg: tf.Tensor4D, lambda: number): tf.Scalar {
  return tf.tidy(() => {
    const z = m.apply(x);
    return tf.add(tf.add(tf.sum(crossEntropy(z, y)), tf.sum(counterfactualLoss(z, y))),
      tf.mul(tf.sum(saliencyPenalty((t) => m.apply(t), x, y, bg)), lambda)) as tf.Scalar;
  });
}

describe('--backbone gradients against finite differences (smooth twin of the MobileNetV2-shaped net)', () => {
  it('CE + CF + λ·saliency: depthwise, conv, BN γ/β and head weights', async () => {
    const model = await buildModel(await backboneConfig(join(dir, 'mnv2-tanh'), 3), 0);
    model.variables[model.variables.length - 2].assign(normal('head2', [16, 3], 2));
    const x = normal('fd-x', [2, 16, 16, 3], 0.6) as tf.Tensor4D;
    const y = tf.tensor1d([0, 2], 'int32');
    const bg = tf.tidy(() => tf.cast(tf.greater(normal('fd-bg', [2, 16, 16, 1]), 0), 'float32')) as tf.Tensor4D;
    for (const lambda of [0, 1e4]) {
      for (const name of ['block_2_depthwise/depthwise_kernel', 'block_1_expand/kernel', 'block_2_project_BN/gamma', 'block_1_depthwise_BN/beta', 'Conv1/kernel', 'head/kernel']) {
        const i = model.paramNames.indexOf(name);
        expect(i, name).toBeGreaterThanOrEqual(0);
        const v = model.variables[i];
        // the saliency term alone when λ > 0, so it is checked on its own scale
        const f = (): tf.Scalar => (lambda === 0 ? objective(model, x, y, bg, 0) : tf.tidy(() => tf.sub(objective(model, x, y, bg, lambda), objective(model, x, y, bg, 0)) as tf.Scalar));
        const { grads, value } = tf.variableGrads(f, [v]);
        value.dispose();
        const d = normal(`dir-${name}`, v.shape);
        const ad = tf.sum(tf.mul(grads[v.name], d)).dataSync()[0];
        const w0 = v.clone();
        const central = (h: number): number => {
          v.assign(tf.add(w0, tf.mul(d, h)));
          const up = f().dataSync()[0];
          v.assign(tf.sub(w0, tf.mul(d, h)));
          const down = f().dataSync()[0];
          v.assign(w0);
          return (up - down) / (2 * h);
        };
        // Richardson: (4·D(h/2) − D(h)) / 3 cancels the h² term of the central difference
        const fd = (4 * central(5e-3) - central(1e-2)) / 3;
        expect(Math.abs(fd - ad) / Math.max(1e-2, Math.abs(ad)), `${name} λ=${lambda}: fd ${fd} vs ad ${ad}`).toBeLessThan(1e-2);
        tf.dispose([grads[v.name], d, w0]);
      }
    }
    model.dispose();
  });
});

describe('train --backbone (end to end: one step, checkpoint, evaluation through the rebuilt backbone)', () => {
  it('records the backbone in config.json, freezes by layer name, evaluates the best checkpoint', async () => {
    const { train } = await import('../trainer/train.ts');
    const { writeToyDataset } = await import('./train-fixture.ts');
    const { readFile } = await import('node:fs/promises');
    const toy = await writeToyDataset(join(dir, 'toy'), { side: 20, counts: { train: 4, val: 2, test: 4 } });
    const logs: string[] = [];
    const r = await train({
      method: 'orig+sal', dataset: toy.dataset, corporaRoot: toy.corporaRoot, runsRoot: join(dir, 'runs'), size: 16, batch: 2, epochs: 1, maxSteps: 1,
      backend: 'wasm', backbone: join(dir, 'mnv2'), freeze: 'block_2', auprImages: 2, egSamples: 1, log: (l) => logs.push(l), progress: 'off',
    });
    const log = logs.join('\n');
    expect(log).toMatch(/backbone .*mnv2: cut at global_average_pooling2d \(16 features\), fresh 2-class head/);
    expect(log).toMatch(/--freeze block_2: .* training from block_2_expand\/kernel on/);
    const cfg = JSON.parse(await readFile(join(r.runDir, 'config.json'), 'utf8'));
    expect(cfg.model.backbone).toMatchObject({ cut: 'global_average_pooling2d', features: 16 });
    expect(r.eval).not.toBeNull();
    await expect(train({
      method: 'orig', dataset: toy.dataset, corporaRoot: toy.corporaRoot, runsRoot: join(dir, 'runs'), runId: 'bad-size', size: 32, batch: 2, epochs: 1,
      backend: 'wasm', backbone: join(dir, 'mnv2'), log: () => undefined, progress: 'off',
    })).rejects.toThrow(/takes 16×16 images, the run's --size is 32/);
  });
});
