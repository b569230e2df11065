import { SIZE_MULTIPLE } from './defaults.ts';
import { GraphBuilder, type Graph } from '../onnx/graph.ts';

/**
 * Our CAGAN-style generator (after Yu et al. 2018, "DeepFill v1"), shrunk for CPUs: a coarse network and a
 * refinement network of the same shape, each an encoder (two stride-2 convolutions), a dilated middle (rates 2, 4,
 * 8 at quarter resolution: the receptive field covers the whole 64 px input, so the hole sees context from every
 * side) and an up-sampling decoder. ELU activations, tanh output in [−1, 1]. The refinement network sees the coarse
 * result pasted into the hole. The contextual-attention branch of DeepFill is left out (see docs/inpainting.md).
 *
 * Inputs (NHWC in tfjs, NCHW in the exported ONNX): `image` in [−1, 1] with 3 channels, `mask` with 1 channel,
 * 1 = hole. The image is multiplied by (1 − mask) first, so whatever the caller left in the hole cannot leak through.
 */
export interface InpainterSpec {
  /** channels of the first layer; deeper layers use 2× and 4× (default 16) */
  width: number;
}

export interface InpainterGraph {
  graph: Graph;
  /** the coarse stage's output tensor (trained with its own L1 term) */
  coarse: string;
  /** the final output tensor (exported) */
  fine: string;
}

/**
 * One encoder–dilated–decoder network. Everything runs at ≤ half resolution (64 px input → 32 → 16) and the 3-channel
 * result is bilinearly up-sampled ×2 at the end: on a CPU the full-resolution layers cost most of a step, and at this
 * model size they bought no measurable L1 (docs/inpainting.md).
 */
function stage(g: GraphBuilder, x: string, c: number, name: string): string {
  let h = g.elu(g.conv(x, c, { k: 5, stride: 2, name: `${name}.e1` }));
  h = g.elu(g.conv(h, c, { k: 3, name: `${name}.e2` }));
  h = g.elu(g.conv(h, 2 * c, { k: 3, stride: 2, name: `${name}.e3` }));
  for (const d of [2, 4, 8]) h = g.elu(g.conv(h, 2 * c, { k: 3, dilation: d, name: `${name}.d${d}` }));
  h = g.elu(g.conv(h, 2 * c, { k: 3, name: `${name}.m` }));
  h = g.elu(g.conv(g.upsample(h, 2, 'nearest'), c, { k: 3, name: `${name}.u1` }));
  h = g.conv(h, 3, { k: 3, name: `${name}.out` });
  return g.tanh(g.upsample(h, 2, 'linear'));
}

export function buildInpainter(spec: InpainterSpec = { width: 16 }): InpainterGraph {
  const g = new GraphBuilder('cfgen-inpainter');
  const image = g.input('image', 3);
  const mask = g.input('mask', 1);
  const keep = g.sub(1, mask);
  const known = g.mul(image, keep);
  const coarse = stage(g, g.concat([known, mask]), spec.width, 'coarse');
  const pasted = g.add(g.mul(coarse, mask), known);
  const fine = stage(g, g.concat([pasted, mask]), spec.width, 'fine');
  g.output(fine);
  g.output(coarse);
  return { graph: g.build(), coarse, fine };
}

/** The graph the ONNX file holds: the final output only. */
export function exportGraph(n: InpainterGraph): Graph {
  return { ...n.graph, outputs: [n.fine] };
}

/** Input sizes must be divisible by 4 (two stride-2 convolutions, then two ×2 up-samplings). */
export { SIZE_MULTIPLE };
