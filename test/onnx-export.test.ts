import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { rngFor } from '../manifests/rng.ts';
import { GraphBuilder, type Graph, type Weights } from '../trainer/onnx/graph.ts';
import { exportOnnx, hwioToOihw } from '../trainer/onnx/export.ts';
import { runGraph } from '../trainer/onnx/tf-exec.ts';
import { buildInpainter } from '../trainer/inpainter/network.ts';
import { exportDiscrepancy, onnxBytes } from '../trainer/inpainter/export.ts';
import { initWeights } from '../trainer/inpainter/weights.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

function randomWeights(g: Graph, seed: string): Weights {
  const rng = rngFor('onnx-export-test', seed);
  const w: Weights = {};
  for (const p of g.params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    w[p.name] = { shape: p.shape, data: Float32Array.from({ length: n }, () => rng.normal() * 0.3) };
  }
  return w;
}

function randomNHWC(shape: [number, number, number, number], seed: string, lo = -2, hi = 2): Float32Array {
  const rng = rngFor('onnx-export-test-input', seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + (hi - lo) * rng.next());
}

function nhwcToNchw(x: Float32Array, [B, H, W, C]: number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) for (let c = 0; c < C; c++)
    out[((b * C + c) * H + y) * W + xx] = x[((b * H + y) * W + xx) * C + c];
  return out;
}

/** Run the graph in tfjs and in onnxruntime on the same weights and inputs; return the max |difference| per output. */
async function compare(g: Graph, seed: string, H = 8, W = 8, B = 2, opts: { io?: 'nchw' | 'nhwc'; opset?: number } = {}, given?: Weights): Promise<number[]> {
  const weights = given ?? randomWeights(g, seed);
  const inputs = Object.fromEntries(g.inputs.map((i) => [i.name, randomNHWC([B, H, W, i.channels], `${seed}/${i.name}`)]));
  const ref = tf.tidy(() => {
    const params = Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
    const feeds = Object.fromEntries(g.inputs.map((i) => [i.name, tf.tensor4d(inputs[i.name], [B, H, W, i.channels])]));
    const out = runGraph(g, params, feeds);
    return g.outputs.map((o) => ({ shape: out[o].shape, data: out[o].dataSync() as Float32Array }));
  });
  const io = opts.io ?? 'nchw';
  const bytes = exportOnnx(g, weights, { io, opset: opts.opset ?? 13 });
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  for (const i of g.inputs) {
    const shape = [B, H, W, i.channels];
    feeds[i.name] = io === 'nhwc'
      ? new ort.Tensor('float32', inputs[i.name], shape)
      : new ort.Tensor('float32', nhwcToNchw(inputs[i.name], shape), [B, i.channels, H, W]);
  }
  const res = await session.run(feeds);
  await session.release();
  return g.outputs.map((o, k) => {
    const t = res[o];
    const [b, h, w, c] = ref[k].shape;
    expect(Array.from(t.dims)).toEqual(io === 'nhwc' ? [b, h, w, c] : [b, c, h, w]);
    const want = io === 'nhwc' ? ref[k].data : nhwcToNchw(ref[k].data, ref[k].shape);
    const got = t.data as Float32Array;
    let max = 0;
    for (let i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - got[i]));
    return max;
  });
}

const single = (name: string, build: (g: GraphBuilder, x: string) => string, channels = 3): Graph => {
  const g = new GraphBuilder(name);
  const x = g.input('x', channels);
  g.output(build(g, x));
  return g.build();
};

describe('exportOnnx: onnxruntime output equals tfjs output within 1e-4, op by op', () => {
  const cases: [string, Graph, number?, number?][] = [
    ['Conv 3×3', single('c3', (g, x) => g.conv(x, 5, { k: 3 }))],
    ['Conv 5×5 no bias', single('c5', (g, x) => g.conv(x, 4, { k: 5, bias: false }))],
    ['Conv 1×1', single('c1', (g, x) => g.conv(x, 6, { k: 1 }))],
    ['Conv 3×3 dilation 2', single('d2', (g, x) => g.conv(x, 4, { k: 3, dilation: 2 }))],
    ['Conv 3×3 dilation 4', single('d4', (g, x) => g.conv(x, 4, { k: 3, dilation: 4 })), 12, 12],
    ['Conv 3×3 stride 2', single('s2', (g, x) => g.conv(x, 4, { k: 3, stride: 2 }))],
    ['Conv 4×4 stride 2', single('s2k4', (g, x) => g.conv(x, 4, { k: 4, stride: 2 }))],
    ['Conv 3×3 stride 2, odd size', single('s2odd', (g, x) => g.conv(x, 4, { k: 3, stride: 2 })), 7, 9],
    ['Relu', single('relu', (g, x) => g.relu(x))],
    ['Elu', single('elu', (g, x) => g.elu(x))],
    ['LeakyRelu 0.2', single('lrelu', (g, x) => g.leakyRelu(x, 0.2))],
    ['Sigmoid', single('sig', (g, x) => g.sigmoid(x))],
    ['Tanh', single('tanh', (g, x) => g.tanh(x))],
    ['Add/Sub/Mul/Div with scalars', single('scal', (g, x) => g.div(g.sub(g.mul(g.add(x, 1.5), -2), 0.25), 4))],
    ['Clip', single('clip', (g, x) => g.clip(x, -0.5, 0.75))],
    ['Resize nearest ×2', single('nn', (g, x) => g.upsample(x, 2, 'nearest')), 5, 6],
    ['Resize linear ×2', single('bl', (g, x) => g.upsample(x, 2, 'linear')), 5, 6],
    ['Slice channels', single('slice', (g, x) => g.sliceChannels(x, 1, 3), 4), 6, 5],
    ['Transpose (swap H and W, in NHWC terms)', (() => {
      const g = new GraphBuilder('tr');
      const x = g.input('x', 3);
      const t = `${x}_t`;
      // Transpose has no builder helper (the inpainter does not need one); write the node directly.
      const graph = (() => { g.output(x); return g.build(); })();
      graph.nodes.push({ op: 'transpose', x, out: t, perm: [0, 2, 1, 3] });
      graph.outputs = [t];
      return graph;
    })(), 4, 6],
  ];
  for (const [name, g, H, W] of cases) {
    it(name, async () => {
      const [d] = await compare(g, name, H, W);
      expect(d).toBeLessThan(1e-4);
    });
  }

  it('binary ops between tensors, with channel broadcasting (mask [.., 1] × image [.., 3]), and Concat', async () => {
    const g = new GraphBuilder('bin');
    const x = g.input('x', 3);
    const m = g.input('m', 1);
    const y = g.concat([g.mul(x, m), g.sub(x, m), g.add(m, x), g.div(x, g.add(g.mul(m, m), 1)), m]);
    g.output(y);
    const [d] = await compare(g.build(), 'bin');
    expect(d).toBeLessThan(1e-4);
  });

  it('NHWC inputs/outputs get boundary transposes; opsets 13 and 17 agree; several outputs', async () => {
    const g = new GraphBuilder('io');
    const x = g.input('x', 3);
    const h = g.elu(g.conv(x, 4, { k: 3 }));
    g.output(h);
    g.output(g.tanh(g.conv(h, 3, { k: 3, dilation: 2 })));
    const graph = g.build();
    for (const io of ['nhwc', 'nchw'] as const) {
      for (const opset of [13, 17]) {
        const ds = await compare(graph, 'io', 8, 8, 2, { io, opset });
        expect(ds.length).toBe(2);
        for (const d of ds) expect(d).toBeLessThan(1e-4);
      }
    }
  });
});

describe('exportOnnx: the model file', () => {
  it('stores HWIO filters as OIHW initializers and declares inputs/outputs with their shapes', () => {
    const g = single('meta', (gb, x) => gb.conv(x, 2, { k: 3, name: 'c' }));
    const w = randomWeights(g, 'meta');
    const m = onnxProto.onnx.ModelProto.decode(exportOnnx(g, w, { size: [16, 16] }));
    expect(Number(m.opsetImport[0].version)).toBe(13);
    const init = m.graph!.initializer!.find((t) => t.name === 'c.w')!;
    expect(init.dims!.map(Number)).toEqual([2, 3, 3, 3]);
    const stored = new Float32Array(Uint8Array.from(init.rawData!).buffer);
    expect(Array.from(stored)).toEqual(Array.from(hwioToOihw(w['c.w'].data, [3, 3, 3, 2]).data));
    // HWIO [i, j, c, o] → OIHW [o, c, i, j]: spot-check one element by hand.
    const [i, j, c, o] = [2, 1, 0, 1];
    expect(stored[((o * 3 + c) * 3 + i) * 3 + j]).toBe(w['c.w'].data[((i * 3 + j) * 3 + c) * 2 + o]);
    const dims = (v: onnxProto.onnx.IValueInfoProto) => v.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    expect(dims(m.graph!.input![0])).toEqual(['B', 3, 16, 16]);
    expect(dims(m.graph!.output![0])).toEqual(['B', 2, 16, 16]);
  });

  it('renames outputs on request (Identity at the boundary) and runs', async () => {
    const g = single('ren', (gb, x) => gb.relu(x));
    const bytes = exportOnnx(g, {}, { outputNames: { [g.outputs[0]]: 'output' } });
    const s = await ort.InferenceSession.create(bytes);
    expect(s.outputNames).toEqual(['output']);
    const ok = await s.run({ x: new ort.Tensor('float32', Float32Array.from({ length: 12 }, (_, i) => i - 6), [1, 3, 2, 2]) });
    expect(Array.from(ok.output.data as Float32Array)).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    await s.release();
  });

  it('refuses missing or mis-shaped weights and unsupported opsets', () => {
    const g = single('bad', (gb, x) => gb.conv(x, 2, { k: 3, name: 'c' }));
    const w = randomWeights(g, 'bad');
    expect(() => exportOnnx(g, { ...w, 'c.w': { shape: [3, 3, 2, 2], data: new Float32Array(36) } })).toThrow(/"c.w" has shape \[3,3,2,2\], graph says \[3,3,3,2\]/);
    expect(() => exportOnnx(g, { 'c.b': w['c.b'] })).toThrow(/no weights for parameter "c.w"/);
    expect(() => exportOnnx(g, w, { opset: 12 })).toThrow(/opset 12 not supported/);
  });
});

describe('exportOnnx: the whole inpainter', () => {
  it('onnxruntime reproduces the tfjs generator within 1e-4 (random weights, opsets 13 and 17, NHWC and NCHW)', async () => {
    const net = buildInpainter({ width: 6 });
    // He-scaled filters as in training (std 0.3 everywhere would blow activations up to where float32 rounding
    // alone exceeds 1e-4), random biases, and full-size output layers so tanh is not near-linear.
    const weights = initWeights(net.graph, 3);
    const rng = rngFor('onnx-export-test', 'inpainter-bias');
    for (const [k, v] of Object.entries(weights)) {
      if (k.endsWith('.b')) v.data.forEach((_, i) => (v.data[i] = 0.1 * rng.normal()));
      if (k.endsWith('.out.w')) v.data.forEach((x, i) => (v.data[i] = 10 * x));
    }
    const S = 32, B = 2;
    const image = randomNHWC([B, S, S, 3], 'img', -1, 1);
    const mask = new Float32Array(B * S * S);
    for (let b = 0; b < B; b++) for (let y = 4 + b; y < 20; y++) for (let x = 8; x < 27 - 3 * b; x++) mask[(b * S + y) * S + x] = 1;
    // The CLI's own export path (named inputs, renamed output, fixed size, opset 13) ...
    const d = await exportDiscrepancy(net, weights, onnxBytes(net, weights, S, 'test'), image, mask, B, S);
    expect(d).toBeLessThan(1e-4);
    // ... and the generic exporter at the other opset / layouts, with both outputs (fine and coarse).
    for (const [io, opset] of [['nhwc', 17], ['nchw', 17]] as const) {
      const ds = await compare(net.graph, 'inpainter', S, S, B, { io, opset }, weights);
      expect(ds.length).toBe(2);
      for (const e of ds) expect(e).toBeLessThan(1e-4);
    }
  });
});
