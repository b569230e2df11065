import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../manifests/errors.ts';

/**
 * The preprocessing card beside a backbone's model.json (`card.json`): what input the backbone was trained on, so
 * our images (NHWC in [−1, 1]) can be mapped to it. Example for Keras MobileNetV2 (`preprocess_input` maps
 * 0–255 to [−1, 1]):
 *   { "inputSize": 224, "range": [-1, 1], "mean": [0, 0, 0], "std": [1, 1, 1], "channelOrder": "RGB" }
 * and for a torchvision-style network: "range": [0, 1], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225].
 * `cut` (optional): the layer whose output is the feature map / vector (default: the last global pooling layer).
 */
export interface BackboneCard {
  /** side the network expects; null when it takes any size */
  inputSize: number | null;
  /** the pixel range before mean/std: [0, 1], [0, 255] or [−1, 1] */
  range: [number, number];
  mean: [number, number, number];
  std: [number, number, number];
  channelOrder: 'RGB' | 'BGR';
  cut?: string;
}

export const CARD_FILE = 'card.json';

const EXAMPLE = '{"inputSize": 224, "range": [-1, 1], "mean": [0, 0, 0], "std": [1, 1, 1], "channelOrder": "RGB"}';

/** Validate a parsed card; a UserError names the first bad field. */
export function checkCard(c: unknown, file: string): BackboneCard {
  const bad = (what: string): never => { throw new UserError(`backbone card: ${what}`, { file, fix: `write it like ${EXAMPLE} (docs/pretrained.md)` }); };
  if (typeof c !== 'object' || c === null) return bad('not a JSON object');
  const o = c as Record<string, unknown>;
  const triple = (k: string): [number, number, number] => {
    const v = o[k];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((n) => typeof n === 'number' && Number.isFinite(n))) return bad(`"${k}" must be three numbers`);
    return v as [number, number, number];
  };
  if (!(o.inputSize === null || o.inputSize === undefined || (Number.isInteger(o.inputSize) && (o.inputSize as number) >= 8))) bad('"inputSize" must be an integer ≥ 8 or null');
  const r = o.range;
  if (!Array.isArray(r) || r.length !== 2 || !(r[0] < r[1])) bad('"range" must be [low, high], e.g. [0, 1], [0, 255] or [-1, 1]');
  const std = triple('std');
  if (std.some((s) => s <= 0)) bad('"std" must be positive');
  if (o.channelOrder !== 'RGB' && o.channelOrder !== 'BGR') bad('"channelOrder" must be "RGB" or "BGR"');
  if (o.cut !== undefined && typeof o.cut !== 'string') bad('"cut" must be a layer name');
  return {
    inputSize: (o.inputSize as number | null | undefined) ?? null, range: r as [number, number], mean: triple('mean'), std,
    channelOrder: o.channelOrder as 'RGB' | 'BGR', ...(o.cut !== undefined ? { cut: o.cut as string } : {}),
  };
}

/** Read `dir/card.json`. */
export async function readCard(dir: string): Promise<BackboneCard> {
  const file = join(dir, CARD_FILE);
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch {
    throw new UserError('the backbone has no preprocessing card', { file, fix: `write ${CARD_FILE} beside model.json, e.g. ${EXAMPLE} (docs/pretrained.md)` });
  }
  try { return checkCard(JSON.parse(text), file); } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`backbone card is not JSON: ${(e as Error).message}`, { file, fix: `e.g. ${EXAMPLE}` });
  }
}
