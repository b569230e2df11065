/**
 * Inpainting bench, two parts, in one run:
 *  1. Quality: L1 in the hole (0–255) on held-out background holes of the embedded default dataset, where the pixels
 *     under the hole are known: our ONNX inpainter (through the runner) beside Tile, Random and Grey. The holes are
 *     the ones `make inpainter` scores (same seed, same hole sizes), on the held-out split.
 *  2. Throughput: images/s of the runner (resize + tensors + worker-thread session + resize back + composite) against
 *     a bare `session.run` loop over prebuilt tensors, same model, same batch size, same process. Target ratio ≥ 0.7.
 *     Also the CPU time per image (all threads of the process): on a shared machine wall-clock rates swing with the
 *     load, CPU ms/img much less.
 *
 *   npx tsx bench/inpaint.ts [--card models/cagan.card.json] [--dataset synth-waterbirds] [--holes 200]
 *                            [--images 512] [--batch 8] [--source-size 64,256] [--repeats 3]
 */
import * as ort from 'onnxruntime-node';
import { access } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { rngFor } from '../manifests/rng.ts';
import type { Mask, RGBImage } from '../manifests/pixels.ts';
import { GREY_U8, greyInfill, randomInfill, tileInfill } from '../pipeline/infills/index.ts';
import { ensureSourceManifest } from '../pipeline/datasets/index.ts';
import { cardModelPath, readCard } from '../pipeline/inpaint/card.ts';
import { OnnxInpainter, sessionOptionsFor } from '../pipeline/inpaint/runner.ts';
import { modelSizeFor, packBatch, prepareItem } from '../pipeline/inpaint/tensors.ts';
import { loadBackgrounds } from '../trainer/inpainter/data.ts';
import { DEFAULT_HOLES } from '../trainer/inpainter/holes.ts';
import { heldOutPairs } from '../trainer/inpainter/train.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const CARD = arg('card', 'models/cagan.card.json');
const DATASET = arg('dataset', 'synth-waterbirds');
const HOLES = Number(arg('holes', '200'));
const IMAGES = Number(arg('images', '512'));
const BATCH = Number(arg('batch', '8'));
const SOURCE_SIZES = arg('source-size', '64,256').split(',').map(Number);
const REPEATS = Number(arg('repeats', '3'));

function holeL1(src: RGBImage, out: RGBImage, hole: Mask): number {
  let s = 0, n = 0;
  for (let p = 0; p < hole.data.length; p++) {
    if (!hole.data[p]) continue;
    for (let c = 0; c < 3; c++) s += Math.abs(out.data[p * 3 + c] - src.data[p * 3 + c]);
    n += 3;
  }
  return s / n;
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

async function quality(): Promise<void> {
  const ensured = await ensureSourceManifest(DATASET, { log: (l) => process.stderr.write(`${l}\n`) });
  // The dataset's own size: the bench scores what the corpus would contain.
  const size = ensured.metadata.config.synth && typeof (ensured.metadata.config.synth as { size?: number }).size === 'number'
    ? (ensured.metadata.config.synth as { size: number }).size : 64;
  const set = await loadBackgrounds({ sourceDir: ensured.dir, root: ensured.root, size, maxTrain: 1, maxHeldOut: HOLES, seed: 0 });
  const pairs = heldOutPairs(set.heldOut, HOLES, 0, DEFAULT_HOLES);
  const images = pairs.map((p) => set.heldOut[p.index].image);
  const holes: Mask[] = pairs.map((p) => {
    const m = { width: size, height: size, data: new Uint8Array(size * size) };
    for (let y = p.hole.y; y < p.hole.y + p.hole.h; y++) m.data.fill(1, y * size + p.hole.x, y * size + p.hole.x + p.hole.w);
    return m;
  });

  const rows: [string, number[], string][] = [];
  const runner = await OnnxInpainter.load(CARD, { batchSize: BATCH });
  const card = runner.card;
  const ours = await runner.inpaint(images, holes);
  await runner.close();
  rows.push([`ours (${card.name})`, ours.map((o, i) => holeL1(images[i], o, holes[i])), CARD]);
  const tile: number[] = [];
  let tileSkipped = 0;
  images.forEach((img, i) => {
    const r = tileInfill(img, holes[i], 'maxrect');
    if (r.status === 'ok') tile.push(holeL1(img, r.image, holes[i]));
    else tileSkipped++;
  });
  rows.push(['tile (maxrect)', tile, tileSkipped ? `${tileSkipped} skipped` : '']);
  rows.push(['random (1x1 grid, sigma 0.2)', images.map((img, i) => holeL1(img, randomInfill(img, holes[i], rngFor('bench-inpaint', i), { grid: [1, 1], sigma: 0.2 }), holes[i])), '']);
  rows.push([`grey (${GREY_U8})`, images.map((img, i) => holeL1(img, greyInfill(img, holes[i]), holes[i])), '']);

  process.stdout.write(`\n## Quality: L1 in the hole, 0-255 (lower is better)\n` +
    `${DATASET} ${set.heldOutSplit} split, ${pairs.length} background holes of ${DEFAULT_HOLES.minFrac}-${DEFAULT_HOLES.maxFrac} of the side, ${size} px\n\n` +
    `| method | hole L1 | holes | note |\n|---|---|---|---|\n` +
    rows.map(([name, v, note]) => `| ${name} | ${mean(v).toFixed(2)} | ${v.length} | ${note} |`).join('\n') + '\n');
}

async function throughput(): Promise<void> {
  const card = await readCard(CARD);
  const modelPath = cardModelPath(CARD, card);
  process.stdout.write(`\n## Throughput: runner vs bare session.run (${IMAGES} images, batch ${BATCH}, ${cpus().length} cores, load ${loadavg()[0].toFixed(1)})\n\n` +
    '| source size | bare session.run img/s | runner img/s | ratio | bare CPU ms/img | runner CPU ms/img |\n|---|---|---|---|---|---|\n');
  for (const S of SOURCE_SIZES) {
    const rng = rngFor('bench-inpaint-throughput', S);
    const images: RGBImage[] = Array.from({ length: IMAGES }, () => ({ width: S, height: S, data: Uint8Array.from({ length: S * S * 3 }, () => rng.int(256)) }));
    const holes: Mask[] = images.map(() => {
      const m = { width: S, height: S, data: new Uint8Array(S * S) };
      const w = Math.round(S * (0.2 + 0.3 * rng.next())), h = Math.round(S * (0.2 + 0.3 * rng.next()));
      const x0 = rng.int(S - w), y0 = rng.int(S - h);
      for (let y = y0; y < y0 + h; y++) m.data.fill(1, y * S + x0, y * S + x0 + w);
      return m;
    });
    // Bare: the same tensors the runner would build, built beforehand, and the same session options; only
    // session.run is timed. The two are measured alternately, best of REPEATS each, so a change in machine load
    // during the run does not favour either.
    const session = await ort.InferenceSession.create(modelPath, sessionOptionsFor() as ort.InferenceSession.SessionOptions);
    const feeds: Record<string, ort.Tensor>[] = [];
    for (let b = 0; b < IMAGES; b += BATCH) {
      const f = packBatch(card, images.slice(b, b + BATCH).map((img, k) => prepareItem(card, img, holes[b + k])));
      feeds.push(Object.fromEntries(Object.entries(f).map(([k, v]) => [k, new ort.Tensor('float32', v.data, v.dims)])));
    }
    const runner = await OnnxInpainter.load(CARD, { batchSize: BATCH });
    await session.run(feeds[0]); // warm-up
    await runner.inpaint(images.slice(0, BATCH), holes.slice(0, BATCH));
    let bare = 0, ours = 0, bareCpu = Infinity, oursCpu = Infinity;
    const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
    for (let r = 0; r < REPEATS; r++) {
      let t0 = performance.now();
      let c0 = process.cpuUsage();
      for (const f of feeds) await session.run(f, [card.output.name]);
      bare = Math.max(bare, IMAGES / ((performance.now() - t0) / 1000));
      bareCpu = Math.min(bareCpu, cpuMs(process.cpuUsage(c0)) / IMAGES);
      t0 = performance.now();
      c0 = process.cpuUsage();
      await runner.inpaint(images, holes);
      ours = Math.max(ours, IMAGES / ((performance.now() - t0) / 1000));
      oursCpu = Math.min(oursCpu, cpuMs(process.cpuUsage(c0)) / IMAGES);
    }
    await session.release();
    await runner.close();
    const [H, W] = modelSizeFor(card, S, S);
    process.stdout.write(`| ${S}x${S} → ${H}x${W} | ${bare.toFixed(0)} | ${ours.toFixed(0)} | ${(ours / bare).toFixed(2)} | ${bareCpu.toFixed(1)} | ${oursCpu.toFixed(1)} |\n`);
  }
}

try {
  await access(CARD);
} catch {
  process.stderr.write(`error: no model card at ${CARD}; run \`make inpainter\` first (or pass --card)\n`);
  process.exit(2);
}
await quality();
await throughput();
