import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { resolve } from 'node:path';
import { UserError } from '../../manifests/errors.ts';
import type { Model } from '../model.ts';
import type { BackboneSpec, ModelConfig } from '../model-config.ts';
import { registerExtraGradients } from '../kernels/index.ts';
import { readCard } from './card.ts';
import { folderLoader } from './io.ts';

// tfjs-layers' Node bundle registers tfjs-core's gradients again when it loads, over ours (the last registration
// wins): put ours back (docs/backends-and-kernels.md).
registerExtraGradients();

/**
 * Any tfjs LayersModel as the feature extractor (`train --backbone <dir>`): cut at its last global pooling layer
 * (or the card's / `--backbone-layer`'s layer; a rank-4 output is average-pooled), a fresh zero-initialised linear
 * head for K classes, BatchNorm in inference mode (its moving statistics are constants, so images never mix in a
 * batch and the saliency penalty's one-backward-pass trick stays exact), and the card's preprocessing applied to
 * our [−1, 1] NHWC input inside the forward pass (so input gradients are w.r.t. our input, like the ResNet's).
 * Trainable parameters: the backbone's trainable weights in layer order, then `head/kernel`, `head/bias`.
 */

const POOLS = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D']);

async function loadLayers(dir: string): Promise<tfl.LayersModel> {
  try {
    return await tfl.loadLayersModel(folderLoader(dir));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot build the LayersModel: ${(e as Error).message}`, { file: dir, fix: 'convert a Keras model with tensorflowjs_converter --input_format keras (layers it uses must exist in tfjs-layers)' });
  }
}

/** The cut layer: the named one, else the last global pooling layer, else the last layer with a rank-4 output. */
function cutLayer(m: tfl.LayersModel, name: string | undefined, dir: string): tfl.layers.Layer {
  if (name) {
    try { return m.getLayer(name); } catch {
      throw new UserError(`the backbone has no layer named "${name}"`, { file: dir, fix: `layers include: ${m.layers.slice(-8).map((l) => l.name).join(', ')}` });
    }
  }
  const pools = m.layers.filter((l) => POOLS.has(l.getClassName()));
  if (pools.length) return pools[pools.length - 1];
  const maps = m.layers.filter((l) => Array.isArray(l.outputShape) && (l.outputShape as number[]).length === 4);
  if (maps.length) return maps[maps.length - 1];
  throw new UserError('no global pooling layer and no rank-4 output to cut the backbone at', { file: dir, fix: 'name the feature layer with --backbone-layer or "cut" in card.json' });
}

/** The model config of a backbone run: reads the card and the model to fix the cut and the feature width. */
export async function backboneConfig(dir: string, numClasses: number, layer?: string): Promise<ModelConfig> {
  const abs = resolve(dir);
  const card = await readCard(abs);
  const m = await loadLayers(abs);
  try {
    const cut = cutLayer(m, layer ?? card.cut, abs);
    const shape = cut.outputShape as number[];
    const features = shape[shape.length - 1];
    if (!(features >= 1)) throw new UserError(`layer ${cut.name} has no fixed channel count (output ${JSON.stringify(shape)})`, { file: abs });
    const backbone: BackboneSpec = { dir: abs, cut: cut.name, features, card };
    return { name: `backbone:${m.name}@${cut.name}`, rootWidth: 0, widths: [], depths: [], bottleneck: false, groups: 1, rootPool: false, numClasses, backbone };
  } finally {
    m.dispose();
  }
}

/** Maps our [−1, 1] RGB input to the backbone's expected input (card), differentiably. */
function preprocess(x: tf.Tensor4D, card: BackboneSpec['card']): tf.Tensor4D {
  const [lo, hi] = card.range;
  // (x + 1)/2·(hi − lo) + lo, then (· − mean)/std, folded into one scale and shift per channel
  const scale = card.std.map((s) => (hi - lo) / 2 / s);
  const shift = card.mean.map((m, c) => ((hi - lo) / 2 + lo - m) / card.std[c]);
  let y = tf.add(tf.mul(x, tf.tensor1d(scale)), tf.tensor1d(shift)) as tf.Tensor4D;
  if (card.channelOrder === 'BGR') y = tf.reverse(y, 3) as tf.Tensor4D;
  return y;
}

/**
 * Forward FLOPs per image of convs and dense layers (2 × multiply-adds), from the layers' static output shapes
 * scaled to `inputSize`; NaN for a backbone built without a fixed input size.
 */
function layerFlops(m: tfl.LayersModel, inputSize: number): number {
  const inShape = m.inputs[0].shape;
  const scale = inShape[1] ? inputSize / (inShape[1] as number) : NaN;
  let total = 0;
  for (const l of m.layers) {
    const cls = l.getClassName();
    const out = l.outputShape as number[];
    const w = l.getWeights(false)[0];
    if (!w) continue;
    // both kernels hold exactly the multiply-adds of one output pixel (Conv2D kh·kw·cin·cout, depthwise kh·kw·cin·M)
    if (cls === 'Conv2D' || cls === 'DepthwiseConv2D') total += 2 * out[1] * out[2] * scale * scale * w.size;
    else if (cls === 'Dense') total += 2 * w.size;
  }
  return total;
}

/** Builds the backbone model of a config written by backboneConfig: backbone weights from its folder, fresh head. */
export async function loadBackboneModel(config: ModelConfig): Promise<Model> {
  const spec = config.backbone!;
  const full = await loadLayers(spec.dir);
  const cut = full.getLayer(spec.cut);
  const features = tfl.model({ inputs: full.inputs, outputs: cut.output as tfl.SymbolicTensor });
  const weights = features.trainableWeights;
  const head = [
    tf.variable(tf.zeros([spec.features, config.numClasses]), true, `head/kernel#${features.id}`),
    tf.variable(tf.zeros([config.numClasses]), true, `head/bias#${features.id}`),
  ];
  const variables = [...weights.map((w) => w.read() as tf.Variable), ...head];
  const paramNames = [...weights.map((w) => w.originalName), 'head/kernel', 'head/bias'];
  const want = spec.card.inputSize;
  const apply = (x: tf.Tensor4D): tf.Tensor2D => tf.tidy(() => {
    if (want !== null && (x.shape[1] !== want || x.shape[2] !== want)) {
      throw new UserError(`the backbone takes ${want}×${want} images, got ${x.shape[1]}×${x.shape[2]}`, { file: spec.dir, fix: `pass --size ${want}` });
    }
    let f = features.apply(preprocess(x, spec.card), { training: false }) as tf.Tensor;
    if (f.rank === 4) f = tf.mean(f, [1, 2]);
    return tf.add(tf.matMul(f as tf.Tensor2D, head[0]), head[1]) as tf.Tensor2D;
  });
  return {
    config, variables, paramNames, apply,
    flops: (size) => layerFlops(features, size) + 2 * spec.features * config.numClasses,
    dispose: () => { full.dispose(); for (const v of head) v.dispose(); },
  };
}
