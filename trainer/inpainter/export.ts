import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../../manifests/io.ts';
import { parseCard, type ModelCard } from '../../common/model-card.ts';
import type { Weights } from '../onnx/graph.ts';
import { exportOnnx } from '../onnx/export.ts';
import { runGraph } from '../onnx/tf-exec.ts';
import { exportGraph, type InpainterGraph } from './network.ts';

/** Tensor names in our ONNX file (and its card). */
export const IO_NAMES = { image: 'image', mask: 'mask', output: 'output' } as const;
export const OPSET = 13;

/**
 * The model card we write next to the ONNX file, typed by the schema both halves share (common/model-card.ts), so a
 * field the runner would refuse is a compile error here rather than a failed `generate` later.
 */
export function ourCard(o: { name: string; file: string; size: number; provenance: string }): ModelCard {
  return {
    name: o.name,
    file: o.file,
    layout: 'separate-nchw',
    inputs: { image: IO_NAMES.image, mask: IO_NAMES.mask },
    output: { name: IO_NAMES.output, layout: 'nchw' },
    valueRange: [-1, 1],
    outputRange: [-1, 1],
    channelOrder: 'RGB',
    mask: { holeValue: 1, dilate: 0 },
    size: { fixed: [o.size, o.size] },
    licence: 'Apache-2.0 (weights trained by cfgen `make inpainter`; the training images keep their own licence)',
    provenance: o.provenance,
  };
}

export function onnxBytes(net: InpainterGraph, weights: Weights, size: number, docString: string): Uint8Array {
  return exportOnnx(exportGraph(net), weights, {
    io: 'nchw', opset: OPSET, size: [size, size], outputNames: { [net.fine]: IO_NAMES.output }, producer: 'cfgen make inpainter', docString,
  });
}

/**
 * Run the exported bytes in onnxruntime and the graph in tfjs on the same inputs; return the max |difference|.
 * The CLI refuses to write a model whose export does not reproduce the trained network.
 */
export async function exportDiscrepancy(net: InpainterGraph, weights: Weights, bytes: Uint8Array, image: Float32Array, mask: Float32Array, B: number, size: number): Promise<number> {
  const S = size;
  const ref = tf.tidy(() => {
    const params = Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, tf.tensor(v.data, v.shape)]));
    const out = runGraph(net.graph, params, { image: tf.tensor4d(image, [B, S, S, 3]), mask: tf.tensor4d(mask, [B, S, S, 1]) });
    return tf.transpose(out[net.fine], [0, 3, 1, 2]).dataSync() as Float32Array; // NCHW like the ONNX output
  });
  const toNchw = (x: Float32Array, C: number) => {
    const o = new Float32Array(x.length);
    for (let b = 0; b < B; b++) for (let p = 0; p < S * S; p++) for (let c = 0; c < C; c++) o[(b * C + c) * S * S + p] = x[(b * S * S + p) * C + c];
    return o;
  };
  const session = await ort.InferenceSession.create(bytes);
  try {
    const res = await session.run({
      [IO_NAMES.image]: new ort.Tensor('float32', toNchw(image, 3), [B, 3, S, S]),
      [IO_NAMES.mask]: new ort.Tensor('float32', toNchw(mask, 1), [B, 1, S, S]),
    });
    const got = res[IO_NAMES.output].data as Float32Array;
    let max = 0;
    for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(ref[i] - got[i]));
    return max;
  } finally {
    await session.release();
  }
}

/**
 * Write `<out>.onnx` and `<out without .onnx>.card.json` atomically; returns the card path. The card is validated
 * first (types cannot check value ranges or name clashes), so a model the runner would refuse is never written.
 */
export async function writeModel(outOnnx: string, bytes: Uint8Array, card: ModelCard): Promise<string> {
  const cardPath = join(dirname(outOnnx), `${basename(outOnnx, '.onnx')}.card.json`);
  parseCard(card, cardPath);
  await writeFileAtomic(outOnnx, bytes);
  await writeJsonAtomic(cardPath, card);
  return cardPath;
}
