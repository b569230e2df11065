import { stat } from 'node:fs/promises';
import pLimit from 'p-limit';
import { UserError } from '../../manifests/errors.ts';
import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import { cardModelPath, checkCardAgainstModel, fixedBatchOf, readCard, type ModelCard } from './card.ts';
import { assertCudaProviderInstalled, cudaNotInstalledError } from './cuda.ts';
import { WorkerSession, type SessionOptionsLite } from './session-worker.ts';
import { compositeBack, holeExtent, modelSizeFor, packBatch, prepareItem, unpackItem, type HoleExtent, type PreparedItem } from './tensors.ts';

export type InpaintDevice = 'cpu' | 'cuda';

export interface InpainterOptions {
  /** 'cuda' requests ['cuda', 'cpu'] execution providers and fails with the install command when CUDA is absent */
  device?: InpaintDevice;
  /** images per session.run (default 8) */
  batchSize?: number;
  /** onnxruntime intra-op threads (default: onnxruntime's choice, all cores) */
  threads?: number;
  /** batches prepared ahead of the one running (default 2): resizing overlaps with inference */
  prefetch?: number;
  /** let onnxruntime's idle threads spin-wait for work (default false; see sessionOptionsFor) */
  spin?: boolean;
}

/**
 * The session options the runner uses. Spin-waiting is off by default: a spinning intra-op thread burns a core
 * the main thread needs for resizing the next batch, and on a shared 2-core machine (load ~15) it halved
 * session.run throughput in our measurement (14.8 → 32.5 img/s without spinning; docs/inpainting.md).
 */
export function sessionOptionsFor(opts: InpainterOptions = {}): SessionOptionsLite {
  return {
    executionProviders: (opts.device ?? 'cpu') === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    ...(opts.spin ? {} : { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }),
  };
}

/**
 * Runs an ONNX inpainter described by a model card on 8-bit images: resize to the model's size, build its tensors,
 * run in batches, convert back, resize back, and paste the result into the hole only.
 */
export class OnnxInpainter {
  private constructor(
    readonly card: ModelCard,
    readonly cardPath: string,
    readonly modelPath: string,
    readonly device: InpaintDevice,
    readonly batchSize: number,
    private readonly prefetch: number,
    private readonly session: WorkerSession,
    /** the model's own batch size when its graph fixes one: short batches are padded to it */
    readonly fixedBatch: number | null,
  ) {}

  /**
   * Read and validate the card, open the model, and check the card against the model's declared inputs and outputs.
   * Every problem is a UserError naming the card (or model) file, raised before any image is touched.
   */
  static async load(cardPath: string, opts: InpainterOptions = {}): Promise<OnnxInpainter> {
    const device = opts.device ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda') throw new UserError(`unknown device "${String(device)}"`, { fix: 'use --device cpu or --device cuda' });
    const batchSize = opts.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch size must be a positive integer, got ${batchSize}`);
    const card = await readCard(cardPath);
    const modelPath = cardModelPath(cardPath, card);
    try {
      if (!(await stat(modelPath)).isFile()) throw new Error('not a file');
    } catch {
      throw new UserError(`the card's model file "${card.file}" does not exist (looked at ${modelPath})`, {
        file: cardPath, fix: 'fix "file" (relative to the card), or create the model: `make inpainter` for ours, docs/inpainting.md for DeepFill',
      });
    }
    if (device === 'cuda') assertCudaProviderInstalled();
    let session: WorkerSession;
    try {
      session = await WorkerSession.create(modelPath, sessionOptionsFor(opts));
    } catch (e) {
      const msg = (e as Error).message;
      if (device === 'cuda' && /cuda|shared library|providers/i.test(msg)) throw cudaNotInstalledError(msg);
      throw new UserError(`onnxruntime cannot load the model: ${msg}`, { file: modelPath, fix: 'check that the file is a complete ONNX model (re-export or re-download it)' });
    }
    try {
      checkCardAgainstModel(card, cardPath, session.inputs, session.outputs);
    } catch (e) {
      await session.close();
      throw e;
    }
    // A graph frozen with a fixed batch (DeepFill's test graph: [1, 256, 512, 3]) only takes that many at a time.
    const fixed = fixedBatchOf(session.inputs);
    return new OnnxInpainter(card, cardPath, modelPath, device, fixed ?? batchSize, opts.prefetch ?? 2, session, fixed);
  }

  /**
   * Inpaint each image's hole (mask value 1 = hole). Pixels outside the hole are the source's, byte for byte.
   * Images may differ in size; each comes back at its own size.
   */
  async inpaint(images: readonly RGBImage[], holes: readonly Mask[]): Promise<RGBImage[]> {
    if (images.length !== holes.length) throw new Error(`inpaint: ${images.length} images but ${holes.length} holes`);
    const out: RGBImage[] = new Array(images.length);
    // Batches hold images of one model size (always true for fixed-size cards).
    const bySize = new Map<string, number[]>();
    const extents: HoleExtent[] = new Array(images.length);
    images.forEach((img, i) => {
      if (holes[i].width !== img.width || holes[i].height !== img.height) {
        throw new Error(`inpaint: item ${i}: hole is ${holes[i].width}×${holes[i].height}, image is ${img.width}×${img.height}`);
      }
      extents[i] = holeExtent(holes[i]);
      if (!extents[i].count) {
        out[i] = { width: img.width, height: img.height, data: img.data.slice() }; // nothing to fill
        return;
      }
      const key = modelSizeFor(this.card, img.width, img.height).join('x');
      if (!bySize.has(key)) bySize.set(key, []);
      bySize.get(key)!.push(i);
    });
    const batches: number[][] = [];
    for (const idx of bySize.values()) for (let s = 0; s < idx.length; s += this.batchSize) batches.push(idx.slice(s, s + this.batchSize));

    const ahead = pLimit(this.prefetch + 1);
    await Promise.all(batches.map((batch) => ahead(async () => {
      // Yield first so the previous batch's run is posted before this one's (synchronous) resizing starts.
      await new Promise((r) => setImmediate(r));
      const prepared: PreparedItem[] = batch.map((i) => prepareItem(this.card, images[i], holes[i], extents[i]));
      const padded = this.fixedBatch && prepared.length < this.fixedBatch
        ? [...prepared, ...Array.from({ length: this.fixedBatch - prepared.length }, () => prepared[prepared.length - 1])]
        : prepared;
      const feeds = packBatch(this.card, padded);
      const res = await this.session.run(feeds, this.card.output.name);
      batch.forEach((i, b) => {
        const { H, W } = prepared[b];
        const gen = unpackItem(this.card, res.data, res.dims, b, H, W);
        out[i] = compositeBack(images[i], holes[i], gen, H, W, extents[i]);
      });
    })));
    return out;
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}
