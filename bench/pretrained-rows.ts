import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, presetConfig, type Model } from '../trainer/model.ts';
import { buildModel } from '../trainer/model-build.ts';
import { applyFreeze } from '../trainer/freeze.ts';
import { parseMethod } from '../trainer/method.ts';
import { makeOptimizer } from '../trainer/optimizer-state.ts';
import { trainStep } from '../trainer/step.ts';
import { syntheticBatch } from './synthetic-batch.ts';

/**
 * `make bench-train`'s fine-tuning rows (docs/benchmarks.md#training): images/s of a CE training step for the
 * three ways to start a run — the `small` model from scratch, BiT r50x1 frozen except its head (`--init
 * BiT-M-R50x1.npz --freeze resnet/head`) and a MobileNetV2-shaped tfjs LayersModel backbone (`--backbone`),
 * fully fine-tuned. Random weights: the speed does not depend on them.
 */

export interface FineTuneRow { name: string; size: number; batch: number; msPerStep: number; imagesPerS: number; gflopsPerImage: number }

function time(name: string, model: Model, size: number, batch: number, steps: number, warmup: number): FineTuneRow {
  const b = syntheticBatch(`bench-ft-${size}`, { size, batch, classes: 2, withGenerated: false });
  const optimizer = makeOptimizer({ optimizer: 'sgd', lr: 1e-3, momentum: 0.9 });
  const ctx = { model, optimizer, method: parseMethod('orig'), cfLoss: 'logp' as const, numClasses: 2, clipNorm: 1, weightDecay: 0 };
  for (let s = 0; s < warmup; s++) trainStep(ctx, b, s);
  const times: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    trainStep(ctx, b, 100 + s);
    times.push(performance.now() - t0);
  }
  optimizer.dispose();
  times.sort((x, y) => x - y);
  const ms = times[Math.floor(times.length / 2)];
  return { name, size, batch, msPerStep: ms, imagesPerS: (1000 * batch) / ms, gflopsPerImage: model.flops(size) / 1e9 };
}

/** The three rows; `small` runs at `smallSize` with `smallBatch`, the pretrained ones at 128 px with `batch`. */
export async function fineTuneRows(o: { smallSize: number; smallBatch: number; batch: number; steps: number; warmup: number }): Promise<FineTuneRow[]> {
  const rows: FineTuneRow[] = [];
  const small = createModel(presetConfig('small', 2), 0);
  rows.push(time('small, from scratch', small, o.smallSize, o.smallBatch, o.steps, o.warmup));
  small.dispose();

  const r50 = createModel(presetConfig('r50x1', 2), 0);
  applyFreeze(r50, 'resnet/head');
  rows.push(time('r50x1, frozen except head', r50, 128, o.batch, o.steps, o.warmup));
  r50.dispose();

  const dir = await mkdtemp(join(tmpdir(), 'bench-mnv2-'));
  try {
    const { mobileNetV2 } = await import('./mobilenetv2.ts');
    const { folderSaver } = await import('../trainer/backbone/io.ts');
    const { backboneConfig } = await import('../trainer/backbone/model.ts');
    const m = mobileNetV2({ size: 128, alpha: 1 });
    await m.save(folderSaver(dir));
    m.dispose();
    await writeFile(join(dir, 'card.json'), JSON.stringify({ inputSize: 128, range: [-1, 1], mean: [0, 0, 0], std: [1, 1, 1], channelOrder: 'RGB' }));
    const mnv2 = await buildModel(await backboneConfig(dir, 2), 0);
    rows.push(time('MobileNetV2 1.0 backbone (LayersModel), all layers', mnv2, 128, o.batch, o.steps, o.warmup));
    mnv2.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
