import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { UserError } from '../../manifests/errors.ts';

/**
 * A model card: everything the runner must know to feed an ONNX inpainter and read its answer. Models differ in
 * every one of these (DeepFill v1 wants BGR 0–255 image|mask side by side; LaMa / MI-GAN want separate NCHW
 * tensors in [0, 1]), and a wrong guess gives plausible-looking garbage rather than an error, so nothing is guessed:
 * the card states it and `parseCard` refuses anything incomplete or unknown.
 *
 * The trainer writes cards as plain JSON objects (it may not import the pipeline); this file is the schema.
 */

/** 'side-by-side-nhwc': one tensor [B, H, 2W, 3], image left, mask (replicated on 3 channels) right (DeepFill v1).
 *  'separate-nchw': image [B, 3, H, W] and mask [B, 1, H, W] (LaMa, MI-GAN, ours). */
export const CARD_LAYOUTS = ['side-by-side-nhwc', 'separate-nchw'] as const;
export type CardLayout = (typeof CARD_LAYOUTS)[number];

export const OUTPUT_LAYOUTS = ['nhwc', 'nchw'] as const;
export type OutputLayout = (typeof OUTPUT_LAYOUTS)[number];

/** Pixel value ranges a card may declare; 8-bit pixels map linearly onto them. */
export const VALUE_RANGES = [[0, 255], [0, 1], [-1, 1]] as const;
export type ValueRange = readonly [number, number];

export interface ModelCard {
  /** short name, used in logs and corpus params */
  name: string;
  /** the .onnx file, relative to the card's folder (or absolute) */
  file: string;
  layout: CardLayout;
  /** input tensor names: side-by-side-nhwc → { image }, separate-nchw → { image, mask } */
  inputs: { image: string; mask?: string };
  /** channelOrder: the output's own order when it differs from the input's (DeepFill's test graph reverses BGR to
   *  RGB before its uint8 cast); default: the card's channelOrder */
  output: { name: string; layout: OutputLayout; channelOrder?: 'RGB' | 'BGR' };
  valueRange: ValueRange;
  outputRange: ValueRange;
  channelOrder: 'RGB' | 'BGR';
  mask: {
    /** the value the model expects inside the hole (outside is always 0) */
    holeValue: number;
    /** grow the hole by this many pixels (at model resolution) before feeding it; the composite still uses the
     *  undilated hole, so the dilation only widens the context the model regenerates */
    dilate: number;
  };
  /** fixed: the model only takes [H, W]; multipleOf: any size whose sides are multiples of n (the runner resizes the
   *  image to its size rounded up to n, so the model still sees roughly the original resolution) */
  size: { fixed: [number, number] } | { multipleOf: number };
  licence: string;
  provenance: string;
}

const TOP_KEYS = ['name', 'file', 'layout', 'inputs', 'output', 'valueRange', 'outputRange', 'channelOrder', 'mask', 'size', 'licence', 'provenance'] as const;

/** The card fields as documentation (README.md, "CF(CAGAN)" and `--help` print this). */
export const CARD_FIELD_DOCS: Record<(typeof TOP_KEYS)[number], string> = {
  name: 'short model name (logs, corpus params)',
  file: 'ONNX file, relative to the card',
  layout: `input layout: ${CARD_LAYOUTS.join(' | ')}`,
  inputs: 'input tensor names: { "image": ... } for side-by-side-nhwc, { "image": ..., "mask": ... } for separate-nchw',
  output: '{ "name": output tensor name, "layout": "nhwc" | "nchw", optional "channelOrder": "RGB" | "BGR" when it differs from the input\'s } (float32 or uint8, 3 channels, the image input\'s size)',
  valueRange: 'range the model expects pixels in: [0,255] | [0,1] | [-1,1]',
  outputRange: 'range of the model output pixels: [0,255] | [0,1] | [-1,1] (clipped to it)',
  channelOrder: 'RGB | BGR (input; also output unless output.channelOrder says otherwise)',
  mask: '{ "holeValue": value inside the hole (outside is 0), "dilate": grow the hole by N model pixels }',
  size: '{ "fixed": [H, W] } or { "multipleOf": n }',
  licence: 'licence of the weights',
  provenance: 'where the weights come from (paper, checkpoint, conversion, or our training run)',
};

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(file: string, msg: string, fix?: string): never {
  throw new UserError(`invalid model card: ${msg}`, { file, fix: fix ?? 'see README.md, "CF(CAGAN)", "Model cards", for every field' });
}

function onlyKeys(file: string, where: string, o: Json, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) fail(file, `unknown field "${where}${k}" (allowed: ${allowed.join(', ')})`);
  }
}

function str(file: string, where: string, v: unknown): string {
  if (typeof v !== 'string' || !v.length) fail(file, `"${where}" must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function posInt(file: string, where: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(file, `"${where}" must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function range(file: string, where: string, v: unknown): ValueRange {
  const ok = Array.isArray(v) && VALUE_RANGES.some((r) => v.length === 2 && v[0] === r[0] && v[1] === r[1]);
  if (!ok) fail(file, `"${where}" must be one of ${VALUE_RANGES.map((r) => JSON.stringify(r)).join(', ')}, got ${JSON.stringify(v)}`);
  return [v[0] as number, v[1] as number];
}

function oneOf<T extends string>(file: string, where: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) fail(file, `"${where}" must be one of ${allowed.join(' | ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** Validate a parsed card strictly: every field present, no unknown field, every enum known. */
export function parseCard(json: unknown, file: string): ModelCard {
  if (!isObj(json)) fail(file, 'the card must be a JSON object');
  onlyKeys(file, '', json, TOP_KEYS);
  for (const k of TOP_KEYS) if (json[k] === undefined) fail(file, `missing field "${k}" (${CARD_FIELD_DOCS[k]})`);

  const layout = oneOf(file, 'layout', json.layout, CARD_LAYOUTS);

  if (!isObj(json.inputs)) fail(file, '"inputs" must be an object of tensor names');
  const inputs = json.inputs;
  if (layout === 'side-by-side-nhwc') {
    onlyKeys(file, 'inputs.', inputs, ['image']);
  } else {
    onlyKeys(file, 'inputs.', inputs, ['image', 'mask']);
    if (!('mask' in inputs)) fail(file, 'layout separate-nchw needs "inputs.mask" (the mask tensor name)');
  }
  const image = str(file, 'inputs.image', inputs.image);
  const maskName = layout === 'separate-nchw' ? str(file, 'inputs.mask', inputs.mask) : undefined;
  if (maskName !== undefined && maskName === image) fail(file, '"inputs.image" and "inputs.mask" name the same tensor');

  if (!isObj(json.output)) fail(file, '"output" must be { "name": ..., "layout": "nhwc" | "nchw" }');
  onlyKeys(file, 'output.', json.output, ['name', 'layout', 'channelOrder']);
  const output: ModelCard['output'] = { name: str(file, 'output.name', json.output.name), layout: oneOf(file, 'output.layout', json.output.layout, OUTPUT_LAYOUTS) };
  if (json.output.channelOrder !== undefined) output.channelOrder = oneOf(file, 'output.channelOrder', json.output.channelOrder, ['RGB', 'BGR'] as const);

  if (!isObj(json.mask)) fail(file, '"mask" must be { "holeValue": ..., "dilate": ... }');
  onlyKeys(file, 'mask.', json.mask, ['holeValue', 'dilate']);
  const holeValue = json.mask.holeValue;
  if (typeof holeValue !== 'number' || !Number.isFinite(holeValue) || holeValue === 0) {
    fail(file, `"mask.holeValue" must be a nonzero number (outside the hole is 0), got ${JSON.stringify(holeValue)}`);
  }
  const dilate = posInt(file, 'mask.dilate', json.mask.dilate, 0);

  if (!isObj(json.size)) fail(file, '"size" must be { "fixed": [H, W] } or { "multipleOf": n }');
  let size: ModelCard['size'];
  if ('fixed' in json.size) {
    onlyKeys(file, 'size.', json.size, ['fixed']);
    const f = json.size.fixed;
    if (!Array.isArray(f) || f.length !== 2) fail(file, `"size.fixed" must be [H, W], got ${JSON.stringify(f)}`);
    size = { fixed: [posInt(file, 'size.fixed[0]', f[0]), posInt(file, 'size.fixed[1]', f[1])] };
  } else if ('multipleOf' in json.size) {
    onlyKeys(file, 'size.', json.size, ['multipleOf']);
    size = { multipleOf: posInt(file, 'size.multipleOf', json.size.multipleOf) };
  } else {
    fail(file, '"size" must be { "fixed": [H, W] } or { "multipleOf": n }');
  }

  return {
    name: str(file, 'name', json.name),
    file: str(file, 'file', json.file),
    layout,
    inputs: maskName === undefined ? { image } : { image, mask: maskName },
    output,
    valueRange: range(file, 'valueRange', json.valueRange),
    outputRange: range(file, 'outputRange', json.outputRange),
    channelOrder: oneOf(file, 'channelOrder', json.channelOrder, ['RGB', 'BGR'] as const),
    mask: { holeValue, dilate },
    size,
    licence: str(file, 'licence', json.licence),
    provenance: str(file, 'provenance', json.provenance),
  };
}

export async function readCard(cardPath: string): Promise<ModelCard> {
  let text: string;
  try {
    text = await readFile(cardPath, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read the model card (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      file: cardPath, fix: 'give the path of a models/<name>.card.json; `make inpainter` writes ours',
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(cardPath, `not valid JSON (${(e as Error).message})`);
  }
  return parseCard(json, cardPath);
}

/** The ONNX file a card points at. */
export function cardModelPath(cardPath: string, card: ModelCard): string {
  return isAbsolute(card.file) ? card.file : resolve(dirname(cardPath), card.file);
}

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
    if (!inputs.some((t) => t.name === n)) fail(cardFile, `the model has no input "${n}" (its inputs: ${names(inputs)})`, 'set "inputs" to the model\'s input names');
  }
  for (const t of inputs) {
    if (!want.includes(t.name)) fail(cardFile, `the model has an input "${t.name}" the card does not feed (card inputs: ${want.join(', ')})`);
  }
  const out = outputs.find((t) => t.name === card.output.name);
  if (!out) fail(cardFile, `the model has no output "${card.output.name}" (its outputs: ${names(outputs)})`, 'set "output.name" to one of the model\'s outputs');

  const fixed = 'fixed' in card.size ? card.size.fixed : null;
  const check = (t: TensorInfo, expect: (number | null)[], what: string, chanAt: 1 | 3, types: string[]) => {
    if (!t.isTensor) fail(cardFile, `"${t.name}" is not a tensor`);
    if (t.type && !types.includes(t.type)) fail(cardFile, `"${t.name}" has element type ${t.type}; the runner handles ${types.join(' or ')} here`);
    const shape = t.shape;
    if (!shape || !shape.length) return; // shape not recorded in the file: nothing to check
    if (shape.length !== expect.length) {
      fail(cardFile, `"${t.name}" has rank ${shape.length} ${JSON.stringify(shape)}, but ${what} needs rank ${expect.length}`);
    }
    // A symbolic dimension matches anything, so an NHWC model fed NCHW (or the reverse) would slip through when
    // its sizes are free; a literal channel count at the other layout's channel position gives it away.
    const otherAt = chanAt === 1 ? 3 : 1;
    if (shape[chanAt] !== expect[chanAt] && shape[otherAt] === expect[chanAt]) {
      fail(cardFile, `"${t.name}" has shape ${JSON.stringify(shape)}, but ${what} needs ${JSON.stringify(expect.map((x) => x ?? '?'))} (channels at axis ${chanAt}; the model looks ${chanAt === 1 ? 'NHWC' : 'NCHW'})`);
    }
    expect.forEach((e, i) => {
      const d = shape[i];
      if (e === null || typeof d !== 'number' || d < 0) return;
      if (d !== e) fail(cardFile, `"${t.name}" has shape ${JSON.stringify(shape)}, but ${what} needs ${JSON.stringify(expect.map((x) => x ?? '?'))}`);
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
  if (new Set(batchDims).size > 1) fail(cardFile, `the model's inputs have different fixed batch sizes (${batchDims.join(', ')})`);
}

/** The model's fixed batch size (e.g. 1 for a graph frozen with a [1, 256, 512, 3] placeholder), or null if free. */
export function fixedBatchOf(inputs: readonly TensorInfo[]): number | null {
  for (const t of inputs) {
    const d = t.shape?.[0];
    if (typeof d === 'number' && d > 0) return d;
  }
  return null;
}
