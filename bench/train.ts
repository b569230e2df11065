/**
 * Training throughput benchmark (`make bench-train`): images/s of a training step with CE only, +CF+F, +Sal,
 * +FGSM (small model, 64 px, batch 32 originals), the CE step's effective GFLOP/s against the backend's
 * measured roofline, the Sal/CE step-time ratio, the data loader's rate against the trainer's consumption, and
 * the same CE step in PyTorch on the CPU when `/usr/bin/python3 -c 'import torch'` works.
 *
 * Then the fine-tuning rows (bench/pretrained-rows.ts): small from scratch, r50x1 frozen except the head at 128 px,
 * and a MobileNetV2-shaped LayersModel backbone at 128 px (`--ft-batch`, default 8; `--no-ft` skips them).
 *
 * usage: npx tsx bench/train.ts [--backend auto|wasm|cpu|tensorflow] [--steps 6] [--batch 32] [--size 64] [--threads 2] [--ft-batch 8]
 */
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arg, syntheticBatch as sharedSyntheticBatch } from './synthetic-batch.ts';
import { ManifestWriter, TOOL_VERSION, rngFor, writeJsonAtomic, type CorpusRow, type ManifestMetadata, type SourceRow } from '../manifests/index.ts';
import { initBackend, type BackendChoice } from '../trainer/backend.ts';
import { measureRoofline } from '../trainer/roofline.ts';
import { createModel, presetConfig, type PresetName } from '../trainer/model.ts';
import { loadDatasetIndex, trainBatches, type TrainBatch } from '../trainer/data.ts';
import { parseMethod } from '../trainer/method.ts';
import { makeOptimizer } from '../trainer/optimizer-state.ts';
import { trainStep } from '../trainer/step.ts';
import { fineTuneRows, type FineTuneRow } from './pretrained-rows.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');


const BACKEND = arg('backend', 'auto') as BackendChoice;
const STEPS = Number(arg('steps', '6'));
const WARMUP = Number(arg('warmup', '2'));
const B = Number(arg('batch', '32'));
const S = Number(arg('size', '64'));
const THREADS = Number(arg('threads', '2'));
const MODEL = arg('model', 'small') as PresetName;
const K = 2;

const syntheticBatch = (withGenerated: boolean): TrainBatch =>
  sharedSyntheticBatch('bench-train', { size: S, batch: B, classes: K, withGenerated });

interface StepTiming { name: string; method: string; imagesPerStep: number; msPerStep: number; imagesPerS: number; originalsPerS: number }

function timeSteps(name: string, method: string, batch: TrainBatch): StepTiming {
  const model = createModel(presetConfig(MODEL, K), 0);
  // SGD-momentum, as bench/torch_step.py, so the two CE steps do the same work
  const optimizer = makeOptimizer({ optimizer: 'sgd', lr: 0.01, momentum: 0.9 });
  const ctx = { model, optimizer, method: parseMethod(method), cfLoss: 'logp' as const, numClasses: K, clipNorm: 1, weightDecay: 0 };
  let images = 0;
  for (let s = 0; s < WARMUP; s++) trainStep(ctx, batch, s);
  const times: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    const t0 = performance.now();
    const st = trainStep(ctx, batch, 100 + s);
    times.push(performance.now() - t0);
    images = st.nImages;
  }
  model.dispose();
  optimizer.dispose();
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  return { name, method, imagesPerStep: images, msPerStep: ms, imagesPerS: (1000 * images) / ms, originalsPerS: (1000 * B) / ms };
}

/** A temporary on-disk dataset at S px with cf/f corpora, for the loader's rate (PNG, like the generator's default). */
async function writeLoaderDataset(dir: string, n: number): Promise<{ corporaRoot: string; dataset: string }> {
  const dataset = 'bench-loader';
  const root = join(dir, 'data');
  await mkdir(join(root, 'img'), { recursive: true });
  const rows: SourceRow[] = [];
  for (let i = 0; i < n; i++) {
    const rng = rngFor('bench-loader', i);
    const img = Buffer.alloc(S * S * 3);
    for (let p = 0; p < img.length; p++) img[p] = (p * 7 + i * 13 + rng.int(32)) & 255;
    const mask = Buffer.alloc(S * S);
    const x0 = rng.int(S / 2), y0 = rng.int(S / 2), side = Math.floor(S / 3);
    for (let y = y0; y < y0 + side; y++) mask.fill(255, y * S + x0, y * S + x0 + side);
    await sharp(img, { raw: { width: S, height: S, channels: 3 } }).png().toFile(join(root, 'img', `${i}.png`));
    await sharp(mask, { raw: { width: S, height: S, channels: 1 } }).png().toFile(join(root, 'img', `${i}-m.png`));
    rows.push({
      id: `i${i}`, split: 'train', label: i % K, class_name: `c${i % K}`, path: `img/${i}.png`, mask_path: `img/${i}-m.png`, mask_format: 'png-nonzero',
      boxes: [x0, y0, side, side], group: null, place: null, location: null, variant: null, width: S, height: S, status: 'ok', error: null,
    });
  }
  const corporaRoot = join(dir, 'corpora');
  const meta: ManifestMetadata = { format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset, class_names: ['c0', 'c1'], tool_version: TOOL_VERSION, seed: 0, config: { root, adapter: 'folder' } };
  const w = new ManifestWriter<SourceRow>(join(corporaRoot, dataset, 'source'), 'source', meta, { prefix: 'source' });
  for (const r of rows) await w.write(r);
  await w.close();
  for (const folder of ['cf-tile', 'f-random']) {
    const kind = folder.startsWith('cf') ? 'cf' : 'f';
    const cw = new ManifestWriter<CorpusRow>(join(corporaRoot, dataset, folder, 'manifest'), 'corpus', { ...meta, kind: 'corpus' });
    // the generated images are copies of the originals: decode cost is what is measured
    await mkdir(join(corporaRoot, dataset, folder, 'img'), { recursive: true });
    for (const r of rows) {
      await copyFile(join(root, r.path), join(corporaRoot, dataset, folder, r.path));
      await cw.write({
        id: `${r.id}/${folder}/0`, source_id: r.id, source_path: r.path, image_path: r.path, split: 'train', label: r.label, class_name: r.class_name,
        non_y: kind === 'cf', kind, method: folder.slice(kind.length + 1), params: '{}', variant: 0, seed: 0, mask_kind: 'box', sha256: null, width: S, height: S, status: 'ok', error: null,
      });
    }
    await cw.close();
  }
  return { corporaRoot, dataset };
}

async function loaderRate(corporaRoot: string, dataset: string, method: string, withMasks: boolean): Promise<{ originalsPerS: number; imagesPerS: number; source: string }> {
  const m = parseMethod(method);
  const index = await loadDatasetIndex({ corporaRoot, dataset, terms: [...m.cf, ...m.f] });
  const limit = Math.min(index.train.length, 8 * B);
  let originals = 0, images = 0;
  // one warm-up pass over a batch, then a timed pass
  for await (const b of trainBatches(index, 0, { batchSize: B, size: S, seed: 0, withMasks, limit: B })) void b;
  const t0 = performance.now();
  for await (const b of trainBatches(index, 1, { batchSize: B, size: S, seed: 0, withMasks, limit })) { originals += b.nOrig; images += b.n; }
  const sec = (performance.now() - t0) / 1000;
  return { originalsPerS: originals / sec, imagesPerS: images / sec, source: `${dataset} (${limit} originals)` };
}

function torchStep(threads: number): { ms: number; version: string } | { skipped: string } {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { skipped: '/usr/bin/python3 cannot import torch (Debian: apt-get install python3-torch; `make bench-train` tries)' };
  const cfg = presetConfig(MODEL, K);
  if (cfg.bottleneck || cfg.rootPool) return { skipped: `bench/torch_step.py mirrors basic-block models only, not ${MODEL}` };
  const r = spawnSync('/usr/bin/python3', [join(ROOT, 'bench', 'torch_step.py'), '--threads', String(threads), '--batch', String(B), '--size', String(S),
    '--root-width', String(cfg.rootWidth), '--widths', cfg.widths.join(','), '--depths', cfg.depths.join(','), '--groups', String(cfg.groups),
    '--root-kernel', String(cfg.rootKernel ?? 7), '--root-stride', String(cfg.rootStride ?? 2), '--classes', String(K), '--steps', String(Math.max(STEPS, 5))], { encoding: 'utf8' });
  if (r.status !== 0) return { skipped: `torch_step.py failed: ${(r.stderr || '').trim().split('\n').slice(-1)[0]}` };
  const out = JSON.parse(r.stdout.trim().split('\n').slice(-1)[0]) as { ms_per_step: number; torch: string };
  return { ms: out.ms_per_step, version: out.torch };
}

async function main(): Promise<void> {
  const backend = await initBackend({ backend: BACKEND, threads: THREADS, log: (l) => process.stderr.write(`${l}\n`) });
  console.log(`backend: ${backend.name} (${backend.reason})`);
  console.log(`model ${MODEL} @ ${S} px, batch ${B} originals, ${STEPS} timed steps after ${WARMUP} warm-up (median)`);
  const roof = await measureRoofline();
  console.log(`roofline: matmul ${roof.matmulGflops.toFixed(2)} GFLOP/s, conv2d ${roof.conv2dGflops.toFixed(2)} GFLOP/s`);

  const plain = syntheticBatch(false), withGen = syntheticBatch(true);
  const rows = [
    timeSteps('CE', 'orig', plain),
    timeSteps('+CF+F', 'cf-x+f-y', withGen),
    timeSteps('+Sal', 'sal', plain),
    timeSteps('+FGSM', 'f-fgsm', plain),
    timeSteps('+CF+F+Sal', 'cf-x+f-y+sal', withGen),
  ];
  console.log('\nstep            images/step   ms/step   images/s   originals/s');
  for (const r of rows) console.log(`${r.name.padEnd(15)} ${String(r.imagesPerStep).padStart(11)} ${r.msPerStep.toFixed(0).padStart(9)} ${r.imagesPerS.toFixed(1).padStart(10)} ${r.originalsPerS.toFixed(1).padStart(13)}`);

  const ce = rows[0], cff = rows[1], sal = rows[2];
  const flops = createModel(presetConfig(MODEL, K), 0);
  const fwd = flops.flops(S);
  flops.dispose();
  const effGflops = (3 * fwd * ce.imagesPerS) / 1e9;
  // The model is conv-bound: the conv2d figure (the same layer shapes) is the roofline; matmul shown for scale.
  const roofRef = roof.conv2dGflops;
  console.log(`\nforward ${(fwd / 1e6).toFixed(1)} MFLOP/image; CE step effective ${effGflops.toFixed(2)} GFLOP/s (3× forward × images/s) = ${(effGflops / roofRef).toFixed(2)} of the conv2d roofline (${roofRef.toFixed(2)} GFLOP/s; target ≥ 0.5); ${(effGflops / roof.matmulGflops).toFixed(2)} of the matmul peak`);
  console.log(`Sal step / CE step time: ${(sal.msPerStep / ce.msPerStep).toFixed(2)} (target ≤ 3)`);

  // Loader: the real synthetic dataset when its corpora exist, else a temporary one of the same size.
  const corpora = join(ROOT, 'corpora');
  let loader: Awaited<ReturnType<typeof loaderRate>>;
  if (existsSync(join(corpora, 'synth-waterbirds', 'cf-tile', 'manifest')) && existsSync(join(corpora, 'synth-waterbirds', 'f-random', 'manifest'))) {
    loader = await loaderRate(corpora, 'synth-waterbirds', 'cf-tile+f-random', false);
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'bench-loader-'));
    const ds = await writeLoaderDataset(dir, 8 * B);
    loader = await loaderRate(ds.corporaRoot, ds.dataset, 'cf-tile+f-random', false);
    await rm(dir, { recursive: true, force: true });
  }
  const ratio = loader.originalsPerS / cff.originalsPerS;
  console.log(`loader (${loader.source}, +CF+F, decode+augment): ${loader.originalsPerS.toFixed(0)} originals/s = ${loader.imagesPerS.toFixed(0)} images/s; trainer consumes ${cff.originalsPerS.toFixed(1)} originals/s → ${ratio.toFixed(1)}× (target ≥ 3)`);

  const torch1 = torchStep(1), torch2 = torchStep(THREADS);
  const torchLines: Record<string, unknown> = {};
  for (const [label, t] of [['1 thread', torch1], [`${THREADS} threads`, torch2]] as const) {
    if ('skipped' in t) { console.log(`PyTorch (${label}): skipped — ${t.skipped}`); torchLines[label] = t; continue; }
    console.log(`PyTorch ${t.version} CE step (${label}): ${t.ms.toFixed(0)} ms; ours ${ce.msPerStep.toFixed(0)} ms → ours / PyTorch = ${(ce.msPerStep / t.ms).toFixed(2)}`);
    torchLines[label] = { ms: t.ms, version: t.version, ratio: ce.msPerStep / t.ms };
  }
  let fineTune: FineTuneRow[] = [];
  if (!process.argv.includes('--no-ft')) {
    fineTune = await fineTuneRows({ smallSize: S, smallBatch: B, batch: Number(arg('ft-batch', '8')), steps: Math.min(STEPS, 3), warmup: 1 });
    console.log('\nfine-tuning (CE step, orig only)                  px  batch   ms/step   images/s   GFLOP/image');
    for (const r of fineTune) console.log(`${r.name.padEnd(50)} ${String(r.size).padStart(3)} ${String(r.batch).padStart(6)} ${r.msPerStep.toFixed(0).padStart(9)} ${r.imagesPerS.toFixed(1).padStart(10)} ${r.gflopsPerImage.toFixed(2).padStart(13)}`);
  }
  await writeJsonAtomic(join(ROOT, '.bench', 'train.json'), {
    fine_tune: fineTune,
    backend, model: MODEL, size: S, batch: B, steps: STEPS, roofline: roof, steps_timing: rows, forward_flops: fwd,
    ce_effective_gflops: effGflops, roofline_fraction: effGflops / roofRef, sal_over_ce: sal.msPerStep / ce.msPerStep,
    loader, loader_over_trainer: ratio, torch: torchLines, tf_memory_tensors: tf.memory().numTensors, time: new Date().toISOString(),
  });
  console.log(`\nwrote .bench/train.json`);
}

main().catch((e) => { console.error(e); process.exit(1); });
