import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { Rng } from '../../manifests/rng.ts';

/**
 * The infill contract. An infill fills a REGION of an image (region.data[i] = 1: replace that pixel) and returns a
 * new image. CF infills get the object's box hole as region, F infills the background (1 − object mask).
 * Infills never write outside the region; the pipeline composites x·(1−r) + out·r afterwards anyway, so a model
 * infill that touches other pixels still cannot change them.
 */

export type InfillKind = 'cf' | 'f';
/** which object mask the region derives from: the box hole (CF) or the segmentation mask (F; box when none) */
export type MaskKind = 'box' | 'seg';

/** What an infill returns: a filled image, or why it could not fill this one (recorded as status `skipped`). */
export type InfillResult = { status: 'ok'; image: RGBImage } | { status: 'skipped'; reason: string };

/** Method parameters: plain JSON values, recorded in the manifest's `params` column as canonical JSON. */
export type Params = Record<string, unknown>;

/** Other images of the same split, for the methods that mix images (Mixed-Rand, batch-scope Shuffle). */
export interface Donor {
  sourceId: string;
  label: number;
  /** the donor image, resized to the target image's size */
  image: RGBImage;
  /** the donor's box mask (its object's hole), at the same size */
  box: Mask;
}

/** Extra inputs beyond (image, region, rng, params). */
export interface InfillContext {
  /** the object mask the region came from (CF: box hole; F: segmentation, or box) */
  object: Mask;
  /** the object's box hole (always given) */
  box: Mask;
  /** donors, in the pipeline's seeded order; only for methods that declare `donors` */
  donors?: Donor[];
  label?: number;
  sourceId?: string;
}

/** How many donors a method wants and which: the pipeline picks them (seeded) from the same split. */
export interface DonorSpec {
  /** donors used per item */
  count(params: Params): number;
  /** donors must have another label than the image (Mixed-Rand) */
  otherClass: boolean;
  /** extra candidates the pipeline may try when a donor cannot be used (decode error, no usable mask) */
  spares: number;
  /** null when the infill can use this donor, else why not (the pipeline then tries the next candidate) */
  accept?(donor: Donor, params: Params): string | null;
}

interface InfillBase {
  /** registry name and corpus folder: `<kind>-<method>`, e.g. `cf-tile` */
  name: string;
  /** the manifest's `method` column, e.g. `tile` */
  method: string;
  kind: InfillKind;
  /** the mask the region derives from; F methods fall back to the box where a dataset has no segmentation */
  maskKind: MaskKind;
  /** one line for --help and docs */
  description: string;
  defaults: Params;
  /** validate and normalise user params (merged over defaults); throw a plain Error naming the bad key */
  parseParams(raw: Params): Params;
  /** true when the output does not depend on the rng: the pipeline then writes one variant only */
  deterministic: boolean;
  /**
   * Output version of the algorithm (default 1), or a function of the parsed params when only some settings changed
   * output (cf-tile: `mode=strip` is 2, the default mode stays 1). It is part of the corpus config, so bump it
   * whenever the same inputs and seed would give other bytes: resume and corpus ids then refuse corpora written by
   * the old code instead of silently mixing the two. Read it through `algorithmOf(method, params)`.
   */
  algorithm?: number | ((params: Params) => number);
  donors?: DonorSpec;
  /**
   * SHA-256 of every file outside `params` that decides the output bytes (model weights, model card), keyed by what
   * it is, e.g. `{ card, model }`. Recorded in the corpus config as `files_sha256`, so a resume refuses a corpus
   * made with other files (without --force) and the corpus id changes with them. Methods whose output depends on
   * nothing but the params leave it out (and their corpus config, hence their ids, stay as they were).
   */
  fileHashes?(params: Params): Promise<Record<string, string>>;
}

/** A pure, synchronous infill: runs in the worker threads. */
export interface SyncInfill extends InfillBase {
  mode: 'sync';
  apply(img: RGBImage, region: Mask, rng: Rng, params: Params, ctx: InfillContext): InfillResult;
}

/** One item of a batched infill call. */
export interface BatchItem {
  image: RGBImage;
  /** 1 = the hole to fill */
  region: Mask;
  /** the item's own stream: rngFor(seed, source_id, name, variant) */
  rng: Rng;
  sourceId: string;
  variant: number;
}

/**
 * An asynchronous, batched infill (a model such as the ONNX inpainter `cf-cagan`). It runs on the main thread, is
 * given up to `batchSize` items at a time and must return one result per item, in order. Only the hole may change:
 * the pipeline composites x·(1−r) + out·r after it regardless.
 */
export interface BatchInfill extends InfillBase {
  mode: 'batch';
  batchSize: number;
  applyBatch(items: BatchItem[], params: Params): Promise<InfillResult[]>;
  /** null when ready; otherwise why not (e.g. "no model at models/cagan.onnx; run `make inpainter`") */
  unavailableReason?(params: Params): Promise<string | null>;
  /** release sessions etc. at the end of a run */
  close?(): Promise<void>;
}

export type InfillMethod = SyncInfill | BatchInfill;

/** The `algorithm` version of `m` for these (parsed) params: a number, the function's answer, or 1 when unset. */
export function algorithmOf(m: { algorithm?: InfillMethod['algorithm'] }, params: Params): number {
  return typeof m.algorithm === 'function' ? m.algorithm(params) : m.algorithm ?? 1;
}
