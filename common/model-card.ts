import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { UserError } from '../manifests/errors.ts';

/**
 * A model card: everything the runner must know to feed an ONNX inpainter and read its answer. Models differ in
 * every one of these (DeepFill v1 wants BGR 0–255 image|mask side by side; LaMa / MI-GAN want separate NCHW
 * tensors in [0, 1]), and a wrong guess gives plausible-looking garbage rather than an error, so nothing is guessed:
 * the card states it and `parseCard` refuses anything incomplete or unknown.
 *
 * This file is the contract between the two halves: the trainer (trainer/inpainter/export.ts) builds a `ModelCard`
 * and validates it before writing; the pipeline (pipeline/inpaint/) reads and validates it, then checks it against
 * the ONNX session there. Nothing here needs onnxruntime, so either half may import it.
 */

/** 'side-by-side-nhwc': one tensor [B, H, 2W, 3], image left, mask (replicated on 3 channels) right (DeepFill v1).
 *  'separate-nchw': image [B, 3, H, W] and mask [B, 1, H, W] (LaMa, MI-GAN, ours). */
export const CARD_LAYOUTS = ['side-by-side-nhwc', 'separate-nchw'] as const;
/** The model input layout a card declares (one of CARD_LAYOUTS). */
export type CardLayout = (typeof CARD_LAYOUTS)[number];

/** Output tensor layouts: [B, H, W, 3] or [B, 3, H, W]. */
export const OUTPUT_LAYOUTS = ['nhwc', 'nchw'] as const;
/** The output layout a card declares (one of OUTPUT_LAYOUTS). */
export type OutputLayout = (typeof OUTPUT_LAYOUTS)[number];

/** Pixel value ranges a card may declare; 8-bit pixels map linearly onto them. */
export const VALUE_RANGES = [[0, 255], [0, 1], [-1, 1]] as const;
/** [low, high] of a tensor's pixel values; parseCard only accepts the VALUE_RANGES. */
export type ValueRange = readonly [number, number];

/** A validated model card (what parseCard returns and what the trainer writes). */
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

/** The card fields as documentation (docs/inpainting.md and `--help` print this). */
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

/**
 * The error for a card that breaks the schema (or, from pipeline/inpaint/card.ts, disagrees with its ONNX file).
 * Every message starts "invalid model card:" and names the card file, so the user knows which file to edit.
 */
export function invalidCard(file: string, msg: string, fix?: string): never {
  throw new UserError(`invalid model card: ${msg}`, { file, fix: fix ?? 'see docs/inpainting.md, "Model cards", for every field' });
}

function onlyKeys(file: string, where: string, o: Json, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) invalidCard(file, `unknown field "${where}${k}" (allowed: ${allowed.join(', ')})`);
  }
}

function str(file: string, where: string, v: unknown): string {
  if (typeof v !== 'string' || !v.length) invalidCard(file, `"${where}" must be a non-empty string, got ${JSON.stringify(v)}`);
  return v;
}

function posInt(file: string, where: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) invalidCard(file, `"${where}" must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function range(file: string, where: string, v: unknown): ValueRange {
  const ok = Array.isArray(v) && VALUE_RANGES.some((r) => v.length === 2 && v[0] === r[0] && v[1] === r[1]);
  if (!ok) invalidCard(file, `"${where}" must be one of ${VALUE_RANGES.map((r) => JSON.stringify(r)).join(', ')}, got ${JSON.stringify(v)}`);
  return [v[0] as number, v[1] as number];
}

function oneOf<T extends string>(file: string, where: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) invalidCard(file, `"${where}" must be one of ${allowed.join(' | ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** Validate a parsed card strictly: every field present, no unknown field, every enum known. */
export function parseCard(json: unknown, file: string): ModelCard {
  if (!isObj(json)) invalidCard(file, 'the card must be a JSON object');
  onlyKeys(file, '', json, TOP_KEYS);
  for (const k of TOP_KEYS) if (json[k] === undefined) invalidCard(file, `missing field "${k}" (${CARD_FIELD_DOCS[k]})`);

  const layout = oneOf(file, 'layout', json.layout, CARD_LAYOUTS);

  if (!isObj(json.inputs)) invalidCard(file, '"inputs" must be an object of tensor names');
  const inputs = json.inputs;
  if (layout === 'side-by-side-nhwc') {
    onlyKeys(file, 'inputs.', inputs, ['image']);
  } else {
    onlyKeys(file, 'inputs.', inputs, ['image', 'mask']);
    if (!('mask' in inputs)) invalidCard(file, 'layout separate-nchw needs "inputs.mask" (the mask tensor name)');
  }
  const image = str(file, 'inputs.image', inputs.image);
  const maskName = layout === 'separate-nchw' ? str(file, 'inputs.mask', inputs.mask) : undefined;
  if (maskName !== undefined && maskName === image) invalidCard(file, '"inputs.image" and "inputs.mask" name the same tensor');

  if (!isObj(json.output)) invalidCard(file, '"output" must be { "name": ..., "layout": "nhwc" | "nchw" }');
  onlyKeys(file, 'output.', json.output, ['name', 'layout', 'channelOrder']);
  const output: ModelCard['output'] = { name: str(file, 'output.name', json.output.name), layout: oneOf(file, 'output.layout', json.output.layout, OUTPUT_LAYOUTS) };
  if (json.output.channelOrder !== undefined) output.channelOrder = oneOf(file, 'output.channelOrder', json.output.channelOrder, ['RGB', 'BGR'] as const);

  if (!isObj(json.mask)) invalidCard(file, '"mask" must be { "holeValue": ..., "dilate": ... }');
  onlyKeys(file, 'mask.', json.mask, ['holeValue', 'dilate']);
  const holeValue = json.mask.holeValue;
  if (typeof holeValue !== 'number' || !Number.isFinite(holeValue) || holeValue === 0) {
    invalidCard(file, `"mask.holeValue" must be a nonzero number (outside the hole is 0), got ${JSON.stringify(holeValue)}`);
  }
  const dilate = posInt(file, 'mask.dilate', json.mask.dilate, 0);

  if (!isObj(json.size)) invalidCard(file, '"size" must be { "fixed": [H, W] } or { "multipleOf": n }');
  let size: ModelCard['size'];
  if ('fixed' in json.size) {
    onlyKeys(file, 'size.', json.size, ['fixed']);
    const f = json.size.fixed;
    if (!Array.isArray(f) || f.length !== 2) invalidCard(file, `"size.fixed" must be [H, W], got ${JSON.stringify(f)}`);
    size = { fixed: [posInt(file, 'size.fixed[0]', f[0]), posInt(file, 'size.fixed[1]', f[1])] };
  } else if ('multipleOf' in json.size) {
    onlyKeys(file, 'size.', json.size, ['multipleOf']);
    size = { multipleOf: posInt(file, 'size.multipleOf', json.size.multipleOf) };
  } else {
    invalidCard(file, '"size" must be { "fixed": [H, W] } or { "multipleOf": n }');
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

/** Read and validate the card at `cardPath`; an unreadable file or bad JSON is a UserError naming the file. */
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
    invalidCard(cardPath, `not valid JSON (${(e as Error).message})`);
  }
  return parseCard(json, cardPath);
}

/** The ONNX file a card points at. */
export function cardModelPath(cardPath: string, card: ModelCard): string {
  return isAbsolute(card.file) ? card.file : resolve(dirname(cardPath), card.file);
}
