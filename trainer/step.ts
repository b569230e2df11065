import * as tf from '@tensorflow/tfjs-core';
import { ROLE, type TrainBatch } from './data-train.ts';
import { countImagesWithMask, counterfactualLoss, crossEntropy, fgsmBackground, mixupBatch, salContribution, saliencyPenalty, saliencyPenaltyAndLogits, softCrossEntropy, type SalNorm } from './losses.ts';
import type { CfLossKind, MethodSpec } from './method.ts';
import type { Model } from './model.ts';

/**
 * One training step (DESIGN §5): every image of the augmented batch (originals, their CF and F images, FGSM
 * images) goes through the model together, each term is a per-example loss, and the total is the sum of all terms
 * divided by the number of images. Gradients are clipped to the global norm before the optimizer step.
 *
 * Its own module because both the training loop (train.ts) and the data-parallel workers (parallel.ts,
 * parallel-worker.ts) run it: the objective is stated once, here.
 */

/** What a step needs besides the batch: the model, its optimizer and the run's objective. */
export interface StepContext {
  model: Model;
  optimizer: tf.Optimizer;
  method: MethodSpec;
  cfLoss: CfLossKind;
  numClasses: number;
  clipNorm: number;
  weightDecay: number;
  /** how the saliency term is normalised (losses.ts SalNorm); default 'authors' */
  salNorm?: SalNorm;
  /**
   * When this step is one shard of a larger batch (data-parallel): that batch's image count and count of images with
   * a mask. The `authors` saliency mean is over the whole batch's masked images, so a shard must scale by the
   * batch's counts, not its own, for the shards' weighted sum to equal the one-process loss.
   */
  salBatch?: SalBatch;
}

/** The whole batch's counts behind the `authors` saliency normalisation. */
export interface SalBatch { images: number; withMask: number }

/** `salBatch` for a whole batch, as trainStep itself counts it (FGSM adds one image per original with a usable mask). */
export function salBatchOf(batch: TrainBatch, method: MethodSpec): SalBatch {
  let usable = 0;
  for (let i = 0; i < batch.nOrig; i++) if (batch.maskUsable[i] === 1) usable++;
  const adv = method.fgsm && batch.objMask && usable ? usable : 0;
  return { images: batch.n + adv, withMask: countImagesWithMask(batch.objMask, batch.nOrig) };
}

/** Per-term sums over the images of one step (divide by `nImages` for the step's contribution). */
export interface StepStats {
  total: number;
  terms: { ce: number; cf: number; f: number; fgsm: number; sal: number };
  counts: { orig: number; cf: number; f: number; fgsm: number; sal: number };
  nImages: number;
  gradNorm: number;
  clipped: boolean;
  skipped: boolean;
}

/** Indices i < n where pred(i) holds, as the int32 indices tf.gather takes. */
function indicesWhere(n: number, pred: (i: number) => boolean): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (pred(i)) out.push(i);
  return Int32Array.from(out);
}

/**
 * The update every step ends with, whether its gradients came from one process or were summed across threads:
 * clip to the global norm, then add L2 weight decay (after clipping, as PyTorch's SGD/RMSProp/Adam weight_decay
 * does), then let the optimizer apply it. `grads` is keyed by variable name and is not disposed.
 */
export function applyClippedUpdate(ctx: StepContext, grads: tf.NamedTensorMap, gradNorm: number): void {
  const scale = gradNorm > ctx.clipNorm ? ctx.clipNorm / gradNorm : 1;
  const varByName = new Map(ctx.model.variables.map((v) => [v.name, v]));
  const update: tf.NamedTensorMap = {};
  for (const n of Object.keys(grads)) {
    update[n] = tf.tidy(() => {
      let g = scale === 1 ? grads[n].clone() : tf.mul(grads[n], scale);
      if (ctx.weightDecay > 0) g = tf.add(g, tf.mul(varByName.get(n)!, ctx.weightDecay));
      return g;
    });
  }
  ctx.optimizer.applyGradients(update);
  tf.dispose(Object.values(update));
}

/**
 * One optimizer step on an augmented batch. Exported for the benchmark and the memory test: it must leave
 * tf.memory().numTensors where it found it (after the optimizer's own state exists).
 */
export function trainStep(ctx: StepContext, batch: TrainBatch, stepSeed: number): StepStats {
  const { model, method, numClasses: K } = ctx;
  const S = batch.size;
  const nOrig = batch.nOrig;
  const cfIdx = indicesWhere(batch.n, (i) => batch.role[i] === ROLE.cf);
  const fIdx = indicesWhere(batch.n, (i) => batch.role[i] === ROLE.f);
  const usable = indicesWhere(nOrig, (i) => batch.maskUsable[i] === 1);
  const forward = (x: tf.Tensor4D): tf.Tensor2D => model.apply(x);
  const kept: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => { kept.push(tf.keep(t)); return t; };

  const x = keep(tf.tensor4d(batch.x, [batch.n, S, S, 3]));
  const labels = keep(tf.tensor1d(batch.labels, 'int32'));
  const xOrig = keep(x.slice([0, 0, 0, 0], [nOrig, S, S, 3]));
  const yOrig = keep(labels.slice([0], [nOrig]));
  const xRest = batch.n > nOrig ? keep(x.slice([nOrig, 0, 0, 0], [batch.n - nOrig, S, S, 3])) : null;
  const yRest = batch.n > nOrig ? keep(labels.slice([nOrig], [batch.n - nOrig])) : null;

  // Object masks of the originals that have both object and background: Sal and FGSM act on their background.
  let xMasked: tf.Tensor4D | null = null, yMasked: tf.Tensor1D | null = null, bgMasked: tf.Tensor4D | null = null;
  if ((method.sal || method.fgsm) && usable.length && batch.objMask) {
    const idx = keep(tf.tensor1d(usable, 'int32'));
    xMasked = keep(tf.gather(xOrig, idx));
    yMasked = keep(tf.gather(yOrig, idx));
    const obj = keep(tf.tensor4d(batch.objMask, [nOrig, S, S, 1]));
    bgMasked = keep(tf.tidy(() => tf.sub(1, tf.gather(obj, idx)) as tf.Tensor4D));
  }
  // FGSM images are made with the weights frozen: only the input gradient is taken, outside variableGrads.
  const xAdv = method.fgsm && xMasked && yMasked && bgMasked
    ? keep(fgsmBackground(forward, xMasked, yMasked, bgMasked, { epsilon: method.fgsm.epsilon, seed: stepSeed }))
    : null;
  let xOrigIn = xOrig;
  let targets: tf.Tensor2D | null = null;
  if (method.mixup) {
    const m = mixupBatch(xOrig, yOrig, K, method.mixup.alpha, stepSeed);
    xOrigIn = keep(m.x);
    targets = keep(method.ls ? tf.tidy(() => tf.add(tf.mul(m.targets, 1 - method.ls!.epsilon), method.ls!.epsilon / K) as tf.Tensor2D) : m.targets);
    if (method.ls) m.targets.dispose();
  }
  const nAdv = xAdv ? xAdv.shape[0] : 0;
  const nImages = batch.n + nAdv;
  const cfIdxT = cfIdx.length ? keep(tf.tensor1d(Int32Array.from(cfIdx, (i) => i - nOrig), 'int32')) : null;
  const fIdxT = fIdx.length ? keep(tf.tensor1d(Int32Array.from(fIdx, (i) => i - nOrig), 'int32')) : null;
  const rest = [xRest, xAdv].filter((t): t is tf.Tensor4D => t !== null);
  const xRestAll = rest.length ? keep(rest.length === 1 ? rest[0] : tf.concat(rest, 0)) : null;
  // With Sal (and no mixup) the originals' logits come from the saliency pass itself: one forward for them. Its
  // background is 0 for an original without a usable mask, whose penalty is then 0.
  const salFused = method.sal !== null && !method.mixup && batch.objMask !== null;
  const bgAllOrig = salFused
    ? keep(tf.tidy(() => tf.mul(tf.sub(1, tf.tensor4d(batch.objMask!, [nOrig, S, S, 1])), tf.tensor4d(Float32Array.from(batch.maskUsable), [nOrig, 1, 1, 1])) as tf.Tensor4D))
    : null;

  const termTensors: Record<keyof StepStats['terms'], tf.Scalar | null> = { ce: null, cf: null, f: null, fgsm: null, sal: null };
  const { value, grads } = tf.variableGrads(() => {
    let origLogits: tf.Tensor2D;
    let restLogits: tf.Tensor2D | null = null;
    let salSum: tf.Scalar | null = null;
    if (salFused) {
      const r = saliencyPenaltyAndLogits(forward, xOrig, yOrig, bgAllOrig!, ctx.salNorm);
      origLogits = r.logits;
      salSum = tf.sum(r.penalty) as tf.Scalar;
      if (xRestAll) restLogits = forward(xRestAll);
    } else {
      const all = xRestAll ? forward(tf.concat([xOrigIn, xRestAll], 0) as tf.Tensor4D) : forward(xOrigIn);
      origLogits = xRestAll ? all.slice([0, 0], [nOrig, K]) : all;
      if (xRestAll) restLogits = all.slice([nOrig, 0], [xRestAll.shape[0], K]);
      if (method.sal && xMasked && yMasked && bgMasked) salSum = tf.sum(saliencyPenalty(forward, xMasked, yMasked, bgMasked, ctx.salNorm)) as tf.Scalar;
    }
    const ce = tf.sum(targets ? softCrossEntropy(origLogits, targets) : crossEntropy(origLogits, yOrig as tf.Tensor1D, method.ls?.epsilon ?? 0)) as tf.Scalar;
    termTensors.ce = tf.keep(ce);
    let total: tf.Scalar = ce;
    if (restLogits && cfIdxT) {
      termTensors.cf = tf.keep(tf.sum(counterfactualLoss(tf.gather(restLogits, cfIdxT) as tf.Tensor2D, tf.gather(yRest!, cfIdxT) as tf.Tensor1D, ctx.cfLoss)) as tf.Scalar);
      total = tf.add(total, termTensors.cf) as tf.Scalar;
    }
    if (restLogits && fIdxT) {
      termTensors.f = tf.keep(tf.sum(crossEntropy(tf.gather(restLogits, fIdxT) as tf.Tensor2D, tf.gather(yRest!, fIdxT) as tf.Tensor1D)) as tf.Scalar);
      total = tf.add(total, termTensors.f) as tf.Scalar;
    }
    if (restLogits && xAdv) {
      const advLogits = restLogits.slice([batch.n - nOrig, 0], [nAdv, K]);
      termTensors.fgsm = tf.keep(tf.sum(crossEntropy(advLogits, yMasked!)) as tf.Scalar);
      total = tf.add(total, termTensors.fgsm) as tf.Scalar;
    }
    if (salSum && method.sal) {
      termTensors.sal = tf.keep(tf.mul(salSum, method.sal.lambda) as tf.Scalar);
      total = tf.add(total, salContribution(termTensors.sal, ctx.salNorm, ctx.salBatch?.withMask ?? countImagesWithMask(batch.objMask, nOrig), ctx.salBatch?.images ?? nImages)) as tf.Scalar;
    }
    return tf.div(total, nImages) as tf.Scalar;
  }, model.variables.filter((v) => v.trainable)); // --freeze: frozen variables get no gradient

  const names = Object.keys(grads);
  const normT = tf.tidy(() => tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n]))))));
  const gradNorm = normT.dataSync()[0];
  normT.dispose();
  const total = value.dataSync()[0];
  value.dispose();
  const skipped = !Number.isFinite(gradNorm) || !Number.isFinite(total);
  const clipped = gradNorm > ctx.clipNorm;
  if (!skipped) applyClippedUpdate(ctx, grads, gradNorm);
  tf.dispose(Object.values(grads));
  const read = (t: tf.Scalar | null): number => (t ? t.dataSync()[0] : 0);
  const stats: StepStats = {
    total,
    terms: { ce: read(termTensors.ce), cf: read(termTensors.cf), f: read(termTensors.f), fgsm: read(termTensors.fgsm), sal: read(termTensors.sal) },
    counts: { orig: nOrig, cf: cfIdx.length, f: fIdx.length, fgsm: nAdv, sal: method.sal ? usable.length : 0 },
    nImages, gradNorm, clipped, skipped,
  };
  tf.dispose(Object.values(termTensors).filter((t): t is tf.Scalar => t !== null));
  tf.dispose(kept);
  return stats;
}
