import { invalidCard, type ModelCard } from '../../common/model-card.ts';

/**
 * The pipeline's half of the model-card contract: checking a card against what the ONNX session declares. The schema
 * itself (types, parseCard, readCard) lives in common/model-card.ts, shared with the trainer that writes cards; it is
 * re-exported here so pipeline code has one place to import card things from.
 */

export {
  CARD_FIELD_DOCS, CARD_LAYOUTS, OUTPUT_LAYOUTS, VALUE_RANGES, cardModelPath, invalidCard, parseCard, readCard,
  type CardLayout, type ModelCard, type OutputLayout, type ValueRange,
} from '../../common/model-card.ts';

/** What a session reports about one tensor (onnxruntime's inputMetadata / outputMetadata entries). */
export interface TensorInfo {
  name: string;
  isTensor: boolean;
  type?: string;
  /** numbers are fixed sizes; strings (or negative numbers) are symbolic/free dimensions */
  shape?: readonly (number | string)[];
}

/**
 * Check a card against what the ONNX file really declares: tensor names, ranks, channel counts and fixed sizes.
 * Runs before any image is read or written, so a wrong card can never produce a corpus.
 */
export function checkCardAgainstModel(
  card: ModelCard, cardFile: string, inputs: readonly TensorInfo[], outputs: readonly TensorInfo[],
): void {
  const names = (l: readonly TensorInfo[]) => l.map((t) => t.name).join(', ') || '(none)';
  const want = card.layout === 'side-by-side-nhwc' ? [card.inputs.image] : [card.inputs.image, card.inputs.mask!];
  for (const n of want) {
    if (!inputs.some((t) => t.name === n)) invalidCard(cardFile, `the model has no input "${n}" (its inputs: ${names(inputs)})`, 'set "inputs" to the model\'s input names');
  }
  for (const t of inputs) {
    if (!want.includes(t.name)) invalidCard(cardFile, `the model has an input "${t.name}" the card does not feed (card inputs: ${want.join(', ')})`);
  }
  const out = outputs.find((t) => t.name === card.output.name);
  if (!out) invalidCard(cardFile, `the model has no output "${card.output.name}" (its outputs: ${names(outputs)})`, 'set "output.name" to one of the model\'s outputs');

  const fixed = 'fixed' in card.size ? card.size.fixed : null;
  const check = (t: TensorInfo, expect: (number | null)[], what: string, chanAt: 1 | 3, types: string[]) => {
    if (!t.isTensor) invalidCard(cardFile, `"${t.name}" is not a tensor`);
    if (t.type && !types.includes(t.type)) invalidCard(cardFile, `"${t.name}" has element type ${t.type}; the runner handles ${types.join(' or ')} here`);
    const shape = t.shape;
    if (!shape || !shape.length) return; // shape not recorded in the file: nothing to check
    if (shape.length !== expect.length) {
      invalidCard(cardFile, `"${t.name}" has rank ${shape.length} ${JSON.stringify(shape)}, but ${what} needs rank ${expect.length}`);
    }
    // A symbolic dimension matches anything, so an NHWC model fed NCHW (or the reverse) would slip through when
    // its sizes are free; a literal channel count at the other layout's channel position gives it away.
    const otherAt = chanAt === 1 ? 3 : 1;
    if (shape[chanAt] !== expect[chanAt] && shape[otherAt] === expect[chanAt]) {
      invalidCard(cardFile, `"${t.name}" has shape ${JSON.stringify(shape)}, but ${what} needs ${JSON.stringify(expect.map((x) => x ?? '?'))} (channels at axis ${chanAt}; the model looks ${chanAt === 1 ? 'NHWC' : 'NCHW'})`);
    }
    expect.forEach((e, i) => {
      const d = shape[i];
      if (e === null || typeof d !== 'number' || d < 0) return;
      if (d !== e) invalidCard(cardFile, `"${t.name}" has shape ${JSON.stringify(shape)}, but ${what} needs ${JSON.stringify(expect.map((x) => x ?? '?'))}`);
    });
  };
  const H = fixed ? fixed[0] : null;
  const W = fixed ? fixed[1] : null;
  const image = inputs.find((t) => t.name === card.inputs.image)!;
  if (card.layout === 'side-by-side-nhwc') {
    check(image, [null, H, W === null ? null : 2 * W, 3], 'layout side-by-side-nhwc [B, H, 2W, 3]', 3, ['float32']);
  } else {
    check(image, [null, 3, H, W], 'layout separate-nchw image [B, 3, H, W]', 1, ['float32']);
    check(inputs.find((t) => t.name === card.inputs.mask)!, [null, 1, H, W], 'layout separate-nchw mask [B, 1, H, W]', 1, ['float32']);
  }
  check(out, card.output.layout === 'nhwc' ? [null, H, W, 3] : [null, 3, H, W], `output layout ${card.output.layout}`, card.output.layout === 'nhwc' ? 3 : 1, ['float32', 'uint8']);
  // Every input's batch dimension must agree: the runner batches them together.
  const batchDims = inputs.map((t) => t.shape?.[0]).filter((d): d is number => typeof d === 'number' && d > 0);
  if (new Set(batchDims).size > 1) invalidCard(cardFile, `the model's inputs have different fixed batch sizes (${batchDims.join(', ')})`);
}

/** The model's fixed batch size (e.g. 1 for a graph frozen with a [1, 256, 512, 3] placeholder), or null if free. */
export function fixedBatchOf(inputs: readonly TensorInfo[]): number | null {
  for (const t of inputs) {
    const d = t.shape?.[0];
    if (typeof d === 'number' && d > 0) return d;
  }
  return null;
}
