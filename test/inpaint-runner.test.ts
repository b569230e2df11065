import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../manifests/errors.ts';
import type { Mask, RGBImage } from '../manifests/pixels.ts';
import { rngFor } from '../manifests/rng.ts';
import { OnnxInpainter } from '../pipeline/inpaint/runner.ts';
import { existsSync } from 'node:fs';
import { assertCudaProviderInstalled, CUDA_INSTALL_COMMAND, CUDA_PROVIDER_LIBS, ortBinFolder } from '../pipeline/inpaint/cuda.ts';

const { onnx } = onnxProto;

// ---- tiny ONNX models whose output is known exactly, built here with onnx-proto directly ----

type Dim = number | string;
const vi = (name: string, dims: Dim[]) => onnx.ValueInfoProto.create({
  name,
  type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});
const f32 = (name: string, dims: number[], values: number[]) => onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: values });
const i64 = (name: string, values: number[]) => onnx.TensorProto.create({ name, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, int64Data: values });
const node = (opType: string, input: string[], output: string[], attribute: onnxProto.onnx.IAttributeProto[] = []) =>
  onnx.NodeProto.create({ opType, input, output, attribute });

function model(nodes: onnxProto.onnx.INodeProto[], inputs: onnxProto.onnx.IValueInfoProto[], outputs: onnxProto.onnx.IValueInfoProto[], inits: onnxProto.onnx.ITensorProto[]): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create({
    irVersion: 7, producerName: 'test', opsetImport: [{ domain: '', version: 13 }],
    graph: { name: 'g', node: nodes, input: inputs, output: outputs, initializer: inits },
  })).finish();
}

/**
 * DeepFill-style [B, 8, 16, 3] BGR 0–255, hole = 255 (right half).
 * Output [B, 8, 8, 3]: inside the hole, the left half mirrored left-right (x → 7 − x); outside, the image.
 * So a hole pixel gets the colour of its mirror pixel, which the test can predict only if the runner fed the
 * image in the right order/range and the mask with the right polarity and value.
 */
function sideBySideMirrorModel(): Uint8Array {
  return model([
    node('Slice', ['in', 'z', 'w', 'ax2'], ['left']),
    node('Slice', ['in', 'w', 'w2', 'ax2'], ['right']),
    node('Div', ['right', 'c255'], ['m']),
    node('Slice', ['left', 'last', 'before0', 'ax2', 'neg1'], ['mirror']),
    node('Sub', ['one', 'm'], ['keep']),
    node('Mul', ['left', 'keep'], ['a']),
    node('Mul', ['mirror', 'm'], ['b']),
    node('Add', ['a', 'b'], ['out']),
  ], [vi('in', ['B', 8, 16, 3])], [vi('out', ['B', 8, 8, 3])], [
    i64('z', [0]), i64('w', [8]), i64('w2', [16]), i64('ax2', [2]), i64('last', [7]), i64('before0', [-9]), i64('neg1', [-1]),
    f32('c255', [], [255]), f32('one', [], [1]),
  ]);
}

/** Separate NCHW RGB [0,1], hole = 1, any size: out = image·(1 − mask) + mask·C, C = (0.2, 0.4, 0.6). */
function separateFillModel(): Uint8Array {
  return model([
    node('Sub', ['one', 'mask'], ['keep']),
    node('Mul', ['image', 'keep'], ['a']),
    node('Mul', ['mask', 'C'], ['b']),
    node('Add', ['a', 'b'], ['out']),
  ], [vi('image', ['B', 3, 'H', 'W']), vi('mask', ['B', 1, 'H', 'W'])], [vi('out', ['B', 3, 'H', 'W'])], [
    f32('one', [], [1]), f32('C', [1, 3, 1, 1], [0.2, 0.4, 0.6]),
  ]);
}

/** Separate NCHW, output is the constant C at every pixel: the model changes every pixel, holes or not. */
function separateConstantModel(): Uint8Array {
  return model([
    node('Mul', ['image', 'zero'], ['z']),
    node('Add', ['z', 'C'], ['out']),
    node('Mul', ['mask', 'zero'], ['unused']),
  ], [vi('image', ['B', 3, 'H', 'W']), vi('mask', ['B', 1, 'H', 'W'])], [vi('out', ['B', 3, 'H', 'W']), vi('unused', ['B', 1, 'H', 'W'])], [
    f32('zero', [], [0]), f32('C', [1, 3, 1, 1], [0.2, 0.4, 0.6]),
  ]);
}

/**
 * A miniature of the authors' DeepFill v1 test graph: batch fixed to 1, [1, 8, 16, 3] BGR 0–255 image|mask, the mask
 * thresholded at 127.5 and its first channel used, the image mapped to [−1, 1] and erased in the hole, the hole filled
 * (here with a constant BGR (0.6, 0.2, 1.0)), mapped back to 0–255, reversed BGR → RGB, and cast to uint8.
 * Expected hole colour: RGB (255, 153, 204).
 */
function deepfillLikeModel(): Uint8Array {
  const u8 = onnx.TensorProto.DataType.UINT8;
  return model([
    node('Slice', ['Placeholder:0', 'z', 'w', 'ax2'], ['left']),
    node('Slice', ['Placeholder:0', 'w', 'w2', 'ax2'], ['right']),
    node('Greater', ['right', 'half'], ['gt']),
    node('Cast', ['gt'], ['m3'], [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: onnx.TensorProto.DataType.FLOAT }]),
    node('Slice', ['m3', 'z', 'one_i', 'ax3'], ['m']),
    node('Div', ['left', 'c127'], ['x0']),
    node('Sub', ['x0', 'one'], ['x']),
    node('Sub', ['one', 'm'], ['keep']),
    node('Mul', ['x', 'keep'], ['inc']),
    node('Mul', ['C', 'm'], ['gen']),
    node('Add', ['gen', 'inc'], ['complete']),
    node('Add', ['complete', 'one'], ['c1']),
    node('Mul', ['c1', 'c127'], ['bgr']),
    node('Slice', ['bgr', 'two', 'minus4', 'ax3', 'neg1'], ['rgb']),
    node('Cast', ['rgb'], ['saturate_cast:0'], [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: u8 }]),
  ], [vi('Placeholder:0', [1, 8, 16, 3])], [onnx.ValueInfoProto.create({
    name: 'saturate_cast:0', type: { tensorType: { elemType: u8, shape: { dim: [1, 8, 8, 3].map((d) => ({ dimValue: d })) } } },
  })], [
    i64('z', [0]), i64('w', [8]), i64('w2', [16]), i64('ax2', [2]), i64('ax3', [3]), i64('one_i', [1]), i64('two', [2]), i64('minus4', [-4]), i64('neg1', [-1]),
    f32('half', [], [127.5]), f32('c127', [], [127.5]), f32('one', [], [1]), f32('C', [1, 1, 1, 3], [0.6, 0.2, 1.0]),
  ]);
}

const deepfillLikeCard = {
  name: 'deepfill-like', file: 'deepfill-like.onnx', layout: 'side-by-side-nhwc', inputs: { image: 'Placeholder:0' },
  output: { name: 'saturate_cast:0', layout: 'nhwc', channelOrder: 'RGB' }, valueRange: [0, 255], outputRange: [0, 255],
  channelOrder: 'BGR', mask: { holeValue: 255, dilate: 0 }, size: { fixed: [8, 8] }, licence: 'test', provenance: 'test',
};

const sideBySideCard = {
  name: 'mirror', file: 'mirror.onnx', layout: 'side-by-side-nhwc', inputs: { image: 'in' }, output: { name: 'out', layout: 'nhwc' },
  valueRange: [0, 255], outputRange: [0, 255], channelOrder: 'BGR', mask: { holeValue: 255, dilate: 0 }, size: { fixed: [8, 8] },
  licence: 'test', provenance: 'built in test/inpaint-runner.test.ts',
};
const separateCard = {
  name: 'fill', file: 'fill.onnx', layout: 'separate-nchw', inputs: { image: 'image', mask: 'mask' }, output: { name: 'out', layout: 'nchw' },
  valueRange: [0, 1], outputRange: [0, 1], channelOrder: 'RGB', mask: { holeValue: 1, dilate: 0 }, size: { multipleOf: 4 },
  licence: 'test', provenance: 'built in test/inpaint-runner.test.ts',
};

function randomImage(w: number, h: number, seed: string): RGBImage {
  const rng = rngFor('inpaint-runner-test', seed);
  return { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => rng.int(256)) };
}
function rectMask(w: number, h: number, x0: number, y0: number, x1: number, y1: number): Mask {
  const m = { width: w, height: h, data: new Uint8Array(w * h) };
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m.data[y * w + x] = 1;
  return m;
}
function expectOutsideUntouched(src: RGBImage, hole: Mask, out: RGBImage): void {
  expect([out.width, out.height]).toEqual([src.width, src.height]);
  let changed = 0;
  for (let p = 0; p < src.width * src.height; p++) {
    if (hole.data[p]) continue;
    for (let c = 0; c < 3; c++) if (out.data[p * 3 + c] !== src.data[p * 3 + c]) changed++;
  }
  expect(changed).toBe(0);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'inpaint-runner-'));
  await writeFile(join(dir, 'mirror.onnx'), sideBySideMirrorModel());
  await writeFile(join(dir, 'fill.onnx'), separateFillModel());
  await writeFile(join(dir, 'constant.onnx'), separateConstantModel());
  await writeFile(join(dir, 'mirror.card.json'), JSON.stringify(sideBySideCard));
  await writeFile(join(dir, 'deepfill-like.onnx'), deepfillLikeModel());
  await writeFile(join(dir, 'deepfill-like.card.json'), JSON.stringify(deepfillLikeCard));
  await writeFile(join(dir, 'fill.card.json'), JSON.stringify(separateCard));
  await writeFile(join(dir, 'constant.card.json'), JSON.stringify({ ...separateCard, name: 'constant', file: 'constant.onnx' }));
});

const opened: OnnxInpainter[] = [];
afterAll(async () => {
  await Promise.all(opened.map((r) => r.close()));
});
async function load(card: string, opts = {}): Promise<OnnxInpainter> {
  const r = await OnnxInpainter.load(join(dir, card), opts);
  opened.push(r);
  return r;
}

describe('OnnxInpainter, side-by-side NHWC BGR 0–255 hole=255', () => {
  it('fills each hole pixel with its mirror pixel (exact), in batches, and keeps everything else', async () => {
    const r = await load('mirror.card.json', { batchSize: 2 });
    const images = [0, 1, 2].map((i) => randomImage(8, 8, `m${i}`));
    const holes = [rectMask(8, 8, 0, 0, 3, 8), rectMask(8, 8, 1, 2, 3, 5), rectMask(8, 8, 0, 7, 4, 8)];
    const out = await r.inpaint(images, holes);
    for (let i = 0; i < 3; i++) {
      expectOutsideUntouched(images[i], holes[i], out[i]);
      for (let y = 0; y < 8; y++) {
        for (let x = 0; x < 8; x++) {
          if (!holes[i].data[y * 8 + x]) continue;
          const mx = 7 - x; // mirror pixel, outside the hole in these cases
          expect(holes[i].data[y * 8 + mx]).toBe(0);
          expect(Array.from(out[i].data.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3)))
            .toEqual(Array.from(images[i].data.subarray((y * 8 + mx) * 3, (y * 8 + mx) * 3 + 3)));
        }
      }
    }
  });

  it('erases the hole before feeding: a hole mirrored onto itself comes back black (0 in 0–255)', async () => {
    const r = await load('mirror.card.json');
    const img = randomImage(8, 8, 'self');
    const hole = rectMask(8, 8, 0, 3, 8, 4); // the whole row 3: every mirror pixel is in the hole too
    const [out] = await r.inpaint([img], [hole]);
    for (let x = 0; x < 8; x++) expect(Array.from(out.data.subarray((3 * 8 + x) * 3, (3 * 8 + x) * 3 + 3))).toEqual([0, 0, 0]);
    expectOutsideUntouched(img, hole, out);
  });
});

describe('OnnxInpainter, a DeepFill-v1-like graph (batch fixed to 1, uint8 RGB output from BGR input)', () => {
  it('runs one image per session.run whatever batch size is asked, and reads the uint8 RGB output', async () => {
    const r = await load('deepfill-like.card.json', { batchSize: 8 });
    expect(r.batchSize).toBe(1);
    // Model-size images: a resized hole's border would blend generated pixels with the (regenerated) context.
    const images = [0, 1, 2].map((i) => randomImage(8, 8, `df${i}`));
    const holes = [rectMask(8, 8, 1, 1, 6, 5), rectMask(8, 8, 0, 0, 8, 2), rectMask(8, 8, 7, 7, 8, 8)];
    const out = await r.inpaint(images, holes);
    for (let i = 0; i < images.length; i++) {
      expectOutsideUntouched(images[i], holes[i], out[i]);
      holes[i].data.forEach((v, p) => {
        if (v) expect(Array.from(out[i].data.subarray(p * 3, p * 3 + 3))).toEqual([255, 153, 204]);
      });
    }
  });
});

describe('OnnxInpainter, separate NCHW RGB [0,1] hole=1', () => {
  it('fills the hole with the model constant (0.2, 0.4, 0.6) → (51, 102, 153), mixed sizes in one call', async () => {
    const r = await load('fill.card.json', { batchSize: 3 });
    const images = [randomImage(12, 8, 'a'), randomImage(8, 8, 'b'), randomImage(12, 8, 'c'), randomImage(4, 16, 'd')];
    const holes = [rectMask(12, 8, 2, 2, 6, 5), rectMask(8, 8, 0, 0, 8, 1), rectMask(12, 8, 11, 7, 12, 8), rectMask(4, 16, 1, 3, 3, 15)];
    const out = await r.inpaint(images, holes);
    for (let i = 0; i < images.length; i++) {
      expectOutsideUntouched(images[i], holes[i], out[i]);
      let inside = 0;
      holes[i].data.forEach((v, p) => {
        if (!v) return;
        inside++;
        expect(Array.from(out[i].data.subarray(p * 3, p * 3 + 3))).toEqual([51, 102, 153]);
      });
      expect(inside).toBeGreaterThan(0);
    }
  });

  it('an empty hole returns the source unchanged', async () => {
    const r = await load('fill.card.json');
    const img = randomImage(8, 8, 'empty');
    const [out] = await r.inpaint([img], [rectMask(8, 8, 0, 0, 0, 0)]);
    expect(Buffer.from(out.data).equals(Buffer.from(img.data))).toBe(true);
  });

  it('keeps the outside byte for byte when the model changes every pixel, at sizes the model must resize', async () => {
    const r = await load('constant.card.json', { batchSize: 2 });
    const sizes: [number, number][] = [[10, 7], [13, 13], [5, 9], [31, 17]];
    const rng = rngFor('inpaint-runner-test', 'holes');
    const images = sizes.map(([w, h], i) => randomImage(w, h, `r${i}`));
    const holes = sizes.map(([w, h]) => {
      const m = { width: w, height: h, data: new Uint8Array(w * h) };
      for (let p = 0; p < w * h; p++) m.data[p] = rng.next() < 0.3 ? 1 : 0; // irregular, scattered hole
      return m;
    });
    const out = await r.inpaint(images, holes);
    for (let i = 0; i < images.length; i++) {
      expectOutsideUntouched(images[i], holes[i], out[i]);
      holes[i].data.forEach((v, p) => {
        if (v) expect(Array.from(out[i].data.subarray(p * 3, p * 3 + 3))).toEqual([51, 102, 153]);
      });
    }
  });
});

describe('OnnxInpainter.load refuses a wrong card before any image is processed', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an input name the model does not have', { ...separateCard, inputs: { image: 'img', mask: 'mask' } }, /no input "img".*image, mask/],
    ['an output name the model does not have', { ...separateCard, output: { name: 'y', layout: 'nchw' } }, /no output "y"/],
    ['a card written for another model', { ...separateCard, file: 'mirror.onnx', inputs: { image: 'in', mask: 'in2' } }, /no input "in2"/],
    ['a fixed size the model does not take', { ...sideBySideCard, size: { fixed: [16, 16] } }, /"in" has shape \["B",8,16,3\].*\[.?\?.?,16,32,3\]/],
    ['an unknown layout', { ...separateCard, layout: 'nchw-separate' }, /"layout" must be one of side-by-side-nhwc \| separate-nchw/],
    ['a missing field', Object.fromEntries(Object.entries(separateCard).filter(([k]) => k !== 'valueRange')), /missing field "valueRange"/],
    ['an unknown field', { ...separateCard, colour: 'RGB' }, /unknown field "colour"/],
    ['a model file that does not exist', { ...separateCard, file: 'nope.onnx' }, /model file "nope.onnx" does not exist/],
  ];
  for (const [what, card, message] of cases) {
    it(`rejects ${what}, naming the card file`, async () => {
      const file = join(dir, `bad-${what.replace(/\W+/g, '-')}.card.json`);
      await writeFile(file, JSON.stringify(card));
      const before = await readdir(dir);
      const err = await OnnxInpainter.load(file).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toMatch(message);
      expect(await readdir(dir)).toEqual(before); // nothing written
    });
  }
});

describe('--device cuda without the CUDA execution provider', () => {
  // On a machine where someone installed the CUDA provider this case cannot be produced.
  const cudaInstalled = CUDA_PROVIDER_LIBS.every((f) => existsSync(join(ortBinFolder(), f)));
  it.skipIf(cudaInstalled)('fails with the documented install command', async () => {
    const err = await OnnxInpainter.load(join(dir, 'fill.card.json'), { device: 'cuda' }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/CUDA execution provider is not installed/);
    expect((err as Error).message).toContain(CUDA_INSTALL_COMMAND);
  });

  it('checks the provider libraries in the bin folder', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'ort-bin-'));
    expect(() => assertCudaProviderInstalled(bin)).toThrow(/libonnxruntime_providers_shared\.so, libonnxruntime_providers_cuda\.so/);
    await writeFile(join(bin, CUDA_PROVIDER_LIBS[0]), '');
    expect(() => assertCudaProviderInstalled(bin)).toThrow(/missing libonnxruntime_providers_cuda\.so in/);
    await writeFile(join(bin, CUDA_PROVIDER_LIBS[1]), '');
    expect(() => assertCudaProviderInstalled(bin)).not.toThrow();
  });
});

describe('the committed default model', () => {
  it('models/cagan.card.json validates against models/cagan.onnx and inpaints a 64 px image', async () => {
    const r = await OnnxInpainter.load(join(process.cwd(), 'models', 'cagan.card.json'));
    opened.push(r);
    expect(r.card).toMatchObject({ layout: 'separate-nchw', size: { fixed: [64, 64] }, valueRange: [-1, 1] });
    const img = randomImage(64, 64, 'committed');
    const hole = rectMask(64, 64, 10, 20, 40, 44);
    const [out] = await r.inpaint([img], [hole]);
    expectOutsideUntouched(img, hole, out);
    let changed = 0;
    hole.data.forEach((v, p) => { if (v && out.data[p * 3] !== img.data[p * 3]) changed++; });
    expect(changed).toBeGreaterThan(600); // of 720 hole pixels: random source pixels are not reproduced
  });
});
