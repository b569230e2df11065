import cliProgress from 'cli-progress';
import { Command, Option } from 'commander';
import { basename } from 'node:path';
import { UserError } from '../../manifests/errors.ts';
import { choiceFlag, intFlag, numberFlag } from '../../common/flags.ts';
import { defaultRoot, resolveRoot, rootHelp } from '../../common/paths.ts';
import type { BackendChoice } from '../backend.ts';
import { SIZE_MULTIPLE, TRAIN_DEFAULTS } from './defaults.ts';
import type { TrainOptions } from './train.ts';

/**
 * `cfgen inpainter`. The command definition loads no tfjs and no ONNX Runtime (`--help` stays instant); the trainer,
 * the exporter and the backend are imported when the command runs.
 */

/** Largest |ONNX − tfjs| accepted before writing the model. */
const EXPORT_TOLERANCE = 1e-4;

const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

interface CliOptions {
  dataset: string;
  source?: string;
  root?: string;
  /** where the source manifests live (default: the corpora root) */
  corporaRoot?: string;
  steps: number;
  batch: number;
  size: number;
  width: number;
  lr: number;
  seed: number;
  out?: string;
  backend: BackendChoice;
  threads?: number;
  maxImages: number;
  heldOut: number;
  holeMin: number;
  holeMax: number;
}

export function inpainterCommand(): Command {
  const d = TRAIN_DEFAULTS;
  return new Command('inpainter')
    .description(
      'Train our small CAGAN-style inpainter on the dataset\'s own backgrounds (random rectangular holes placed where there is no ' +
      'object), export it to ONNX and write its model card, so that `generate --methods cf-cagan` runs offline. The default run ' +
      'needs about 5 minutes of one CPU core (wasm backend, single-threaded; longer on a busy machine). Needs the dataset\'s source ' +
      'manifest (`make dataset DATASET=<name>`). See docs/inpainting.md.')
    .option('--dataset <name>', 'dataset whose source manifest (corpora/<name>/source) supplies the images', 'synth-waterbirds')
    .option('--source <dir>', 'source manifest folder (default: <corpora>/<dataset>/source)')
    .option('--root <dir>', 'dataset root folder (default: the manifest\'s metadata.config.root)')
    .option('--corpora-root <dir>', rootHelp('corpora', 'folder holding the manifests'))
    .option('--steps <n>', 'training steps (Adam)', intFlag('--steps', { min: 1 }), d.steps)
    .option('--batch <n>', 'images per step', intFlag('--batch', { min: 1 }), d.batch)
    .option('--size <px>', `training and model size (square, multiple of ${SIZE_MULTIPLE}); the card fixes the model to it`, intFlag('--size', { min: SIZE_MULTIPLE, max: 1024 }), d.size)
    .option('--width <n>', 'channels of the first layer (deeper layers 2x)', intFlag('--width', { min: 4, max: 256 }), d.width)
    .option('--lr <x>', 'Adam learning rate', numberFlag('--lr', { min: 1e-6, max: 1 }), d.lr)
    .option('--seed <n>', 'seed for weights, image choice and holes', intFlag('--seed', { min: 0 }), d.seed)
    .option('--out <file.onnx>', `ONNX file to write; the card goes next to it as <name>.card.json (default: ${defaultRoot('models')}/cagan.onnx; env CFGEN_MODELS_ROOT moves it)`)
    .addOption(new Option('--backend <name>', `tfjs backend: ${BACKENDS.join(', ')}`).argParser(choiceFlag('--backend', BACKENDS)).default('wasm'))
    .option('--threads <n>', 'backend threads (docs/backends-and-kernels.md)', intFlag('--threads', { min: 1, max: 256 }))
    .option('--max-images <n>', 'at most this many train images (seeded choice)', intFlag('--max-images', { min: 1 }), 2000)
    .option('--held-out <n>', 'held-out (image, hole) pairs scored at the end', intFlag('--held-out', { min: 0 }), 200)
    .option('--hole-min <frac>', 'smallest hole side, as a fraction of the image side', numberFlag('--hole-min', { min: 0.01, max: 1 }), d.holes.minFrac)
    .option('--hole-max <frac>', 'largest hole side, as a fraction of the image side', numberFlag('--hole-max', { min: 0.01, max: 1 }), d.holes.maxFrac)
    .action(async (o: CliOptions) => {
      await runInpainterCli(o);
    });
}

function progress(total: number): { tick(step: number, loss: number, hole: number): void; stop(): void } {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'inpainter [{bar}] {value}/{total} steps | loss {loss} | hole L1 {hole} | ETA {eta_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic);
    bar.start(total, 0, { loss: '-', hole: '-' });
    return { tick: (s, l, h) => bar.update(s, { loss: l.toFixed(4), hole: (h * 127.5).toFixed(1) }), stop: () => bar.stop() };
  }
  const t0 = Date.now();
  let last = t0;
  return {
    tick(s, l, h) {
      const now = Date.now();
      if (now - last < 5000 && s !== total) return;
      last = now;
      const rate = s / ((now - t0) / 1000);
      process.stderr.write(`inpainter: step ${s}/${total}, loss ${l.toFixed(4)}, hole L1 ${(h * 127.5).toFixed(1)}/255, ${rate.toFixed(2)} steps/s, ETA ${Math.round((total - s) / rate)}s\n`);
    },
    stop() {},
  };
}

export async function runInpainterCli(o: CliOptions): Promise<{ onnx: string; card: string; heldOutL1: number }> {
  if (o.size % SIZE_MULTIPLE) throw new UserError(`--size ${o.size} is not a multiple of ${SIZE_MULTIPLE}`, { fix: `use e.g. ${Math.ceil(o.size / SIZE_MULTIPLE) * SIZE_MULTIPLE}` });
  if (o.holeMin > o.holeMax) throw new UserError(`--hole-min ${o.holeMin} is larger than --hole-max ${o.holeMax}`);
  const out = o.out ?? `${defaultRoot('models')}/cagan.onnx`;
  if (!out.endsWith('.onnx')) throw new UserError(`--out must end in .onnx, got ${out}`);
  const t0 = Date.now();
  const { initBackend } = await import('../backend.ts');
  const { packPairs } = await import('./batch.ts');
  const { loadBackgrounds, sourceDirFor } = await import('./data.ts');
  const { exportDiscrepancy, onnxBytes, ourCard, writeModel } = await import('./export.ts');
  const { heldOutPairs, scoreHeldOut, trainInpainter } = await import('./train.ts');
  const backend = await initBackend({ backend: o.backend, threads: o.threads, log: (l) => process.stderr.write(`${l}\n`) });
  const sourceDir = o.source ?? (await sourceDirFor(o.dataset, resolveRoot('corpora', o.corporaRoot)));
  const set = await loadBackgrounds({ sourceDir, root: o.root, size: o.size, maxTrain: o.maxImages, maxHeldOut: o.heldOut, seed: o.seed });
  process.stderr.write(`inpainter: ${set.train.length} train images, ${set.heldOut.length} held-out (${set.heldOutSplit || 'none'}) from ${sourceDir}` +
    `${set.skipped ? `, ${set.skipped} without an object annotation skipped` : ''}; backend ${backend.name}\n`);

  const opts: TrainOptions = {
    steps: o.steps, batch: o.batch, size: o.size, width: o.width, lr: o.lr, seed: o.seed, outsideWeight: TRAIN_DEFAULTS.outsideWeight,
    holes: { minFrac: o.holeMin, maxFrac: o.holeMax, tries: TRAIN_DEFAULTS.holes.tries },
  };
  const bar = progress(o.steps);
  const result = await trainInpainter(set.train, opts, (s, l, h) => bar.tick(s, l, h));
  bar.stop();

  const pairs = heldOutPairs(set.heldOut, o.heldOut, o.seed, opts.holes);
  const heldOutL1 = scoreHeldOut(result.net, result.weights, set.heldOut, pairs, o.size);
  const greyL1 = pairs.length ? meanGreyL1(set, pairs, o.size) : NaN;
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');

  const name = basename(out, '.onnx');
  const provenance = `cfgen make inpainter: trained on ${set.dataset} (train split, ${set.train.length} images, background holes ` +
    `${opts.holes.minFrac}-${opts.holes.maxFrac} of the side), steps=${o.steps}, batch=${o.batch}, size=${o.size}, width=${o.width}, ` +
    `lr=${o.lr}, seed=${o.seed}, loss=L1 in the hole (fine + coarse) + ${opts.outsideWeight} x L1 outside, Adam(0.5, 0.999), ` +
    `backend=${backend.name}; held-out ${set.heldOutSplit || 'none'} hole L1 = ${fmt(heldOutL1)} / 255 over ${pairs.length} holes (grey fill: ${fmt(greyL1)})`;
  const bytes = onnxBytes(result.net, result.weights, o.size, provenance);

  // The ONNX file must reproduce the trained network before it is written.
  const probe = pairs.length
    ? packPairs(set.heldOut, pairs.slice(0, 4), o.size)
    : packPairs(set.train, [{ index: 0, hole: { x: 0, y: 0, w: o.size / 2, h: o.size / 2 }, flip: false }], o.size);
  const B = probe.mask.length / (o.size * o.size);
  const diff = await exportDiscrepancy(result.net, result.weights, bytes, probe.image, probe.mask, B, o.size);
  if (!(diff <= EXPORT_TOLERANCE)) throw new Error(`the exported ONNX model differs from the trained network by ${diff} (> ${EXPORT_TOLERANCE}); not writing it`);

  const card = await writeModel(out, bytes, ourCard({ name, file: basename(out), size: o.size, provenance }));
  const secs = (Date.now() - t0) / 1000;
  const last = result.history.slice(-20);
  const meanLoss = last.reduce((s, h) => s + h.loss, 0) / Math.max(1, last.length);
  process.stdout.write(
    `inpainter: ${o.steps} steps in ${secs.toFixed(0)} s (${(o.steps / secs).toFixed(2)} steps/s, backend ${backend.name}); final loss ${meanLoss.toFixed(4)} (mean of last ${last.length})\n` +
    `  held-out hole L1 (0-255): ours ${fmt(heldOutL1)}, grey ${fmt(greyL1)}  (${pairs.length} holes; \`make bench-inpaint\` compares Tile and Random too)\n` +
    `  ONNX export matches tfjs to ${diff.toExponential(1)}\n` +
    `  wrote ${out} (${(bytes.length / 1024).toFixed(0)} KiB) and ${card}\n`,
  );
  return { onnx: out, card, heldOutL1 };
}

/** L1 of a mid-grey (128) fill in the hole, 0–255 units: the floor any inpainter must beat. */
function meanGreyL1(set: { heldOut: { image: { data: Uint8Array } }[] }, pairs: { index: number; hole: { x: number; y: number; w: number; h: number } }[], size: number): number {
  let total = 0;
  for (const p of pairs) {
    const d = set.heldOut[p.index].image.data;
    let s = 0;
    for (let y = p.hole.y; y < p.hole.y + p.hole.h; y++) for (let x = p.hole.x; x < p.hole.x + p.hole.w; x++) for (let c = 0; c < 3; c++) s += Math.abs(d[(y * size + x) * 3 + c] - 128);
    total += s / (p.hole.w * p.hole.h * 3);
  }
  return total / pairs.length;
}
