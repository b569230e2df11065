import { Command } from 'commander';
import { intFlag, numberFlag } from '../common/flags.ts';
import { resolveRoot, rootHelp } from '../common/paths.ts';
import cliProgress from 'cli-progress';
import { readSourceManifest, type SourceRow } from '../manifests/index.ts';
import { ensureSourceManifest, KNOWN_DATASETS } from './datasets/index.ts';
import { summarizeRows } from './datasets/common.ts';
import { SYNTH_DEFAULTS, type SynthOptions } from './synth/index.ts';
import { DEFAULT_MAX_PIXELS } from './decode.ts';

/** A progress reporter: a bar on a terminal, otherwise a line every few seconds (logs stay readable). */
function progressReporter(): { report: (done: number, total: number, stage: string) => void; stop: () => void } {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({ format: '{stage} [{bar}] {value}/{total} {eta_formatted}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
    let stage = '';
    return {
      report(done, total, s) {
        if (s !== stage) {
          if (stage) bar.stop();
          stage = s;
          bar.start(total, 0, { stage: s });
        }
        bar.update(done, { stage: s });
      },
      stop: () => { if (stage) bar.stop(); },
    };
  }
  let last = 0;
  return {
    report(done, total, stage) {
      const now = Date.now();
      if (done === total || now - last > 3000) {
        last = now;
        process.stderr.write(`${stage}: ${done}/${total}\n`);
      }
    },
    stop: () => {},
  };
}

export function formatSummary(rows: readonly SourceRow[], classNames: string[], maxErrors = 20): string {
  const s = summarizeRows(rows);
  const out: string[] = [`${s.total} rows, ${classNames.length} classes (${classNames.join(', ')})`];
  for (const [split, n] of Object.entries(s.bySplit)) {
    const groups = Object.entries(s.byGroup[split] ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const g = groups.length > 1 || groups[0]?.[0] !== '(none)' ? `  groups: ${groups.map(([k, v]) => `[${k}] ${v}`).join(', ')}` : '';
    out.push(`  ${split}: ${n}${g}`);
  }
  const withBoxes = rows.filter((r) => r.status === 'ok' && r.boxes).length;
  const withMasks = rows.filter((r) => r.status === 'ok' && r.mask_path).length;
  out.push(`  with boxes: ${withBoxes}, with segmentation masks: ${withMasks}`);
  out.push(`  error rows: ${s.errors.length}`);
  for (const e of s.errors.slice(0, maxErrors)) out.push(`    ${e.id}: ${e.error}`);
  if (s.errors.length > maxErrors) out.push(`    ... and ${s.errors.length - maxErrors} more (status = 'error' in the manifest)`);
  return out.join('\n');
}

export function datasetCommand(): Command {
  const d = SYNTH_DEFAULTS;
  const defaults = (k: keyof SynthOptions) => `synth-waterbirds ${d['synth-waterbirds'][k]}, synth-in9 ${d['synth-in9'][k]}, synth-cct ${d['synth-cct'][k]}`;
  return new Command('dataset')
    .description('Build a synthetic dataset (synth-*) or ingest a real one, and write its source manifest to <corpora-root>/<dataset>/source/.')
    .argument('[name]', `dataset: ${KNOWN_DATASETS.join(' | ')}`, 'synth-waterbirds')
    .option('--data-root <dir>', rootHelp('data', 'folder holding the datasets: <data-root>/<name>/ (synthetic datasets are built there)'))
    .option('--corpora-root <dir>', rootHelp('corpora', 'folder for manifests and corpora'))
    .option('--seed <n>', 'dataset seed: synthetic data, and the carved IN-9 val split when the release has none (default: 0; with no seed and no synthetic knob given, an existing build is reused as is)', intFlag('--seed', { min: 0 }))
    .option('--size <px>', `synthetic image side (default: ${defaults('size')})`, intFlag('--size', { min: 8, max: 4096 }))
    .option('--train <n>', `synthetic train images (default: ${defaults('train')})`, intFlag('--train', { min: 1 }))
    .option('--val <n>', `synthetic val images (CCT: cis_val) (default: ${defaults('val')})`, intFlag('--val', { min: 1 }))
    .option('--test <n>', `synthetic test images (IN-9: per variant; CCT: each of cis_test, trans_test) (default: ${defaults('test')})`, intFlag('--test', { min: 1 }))
    .option('--correlation <p>', `train P(background agrees with class) (default: ${defaults('correlation')})`, numberFlag('--correlation', { min: 0, max: 1 }))
    .option('--difficulty <d>', `0..1, overlap and noise of the background families; higher = weaker shortcut (default: ${defaults('difficulty')})`, numberFlag('--difficulty', { min: 0, max: 1 }))
    .option('--fg-scale <f>', `foreground side / image side, jittered ±15% (default: ${defaults('fgScale')})`, numberFlag('--fg-scale', { min: 0, max: 1, minExclusive: true }))
    .option('--force', 'rebuild the synthetic data and the manifest even if they are up to date', false)
    .option('--strict', 'exit with status 1 when any row has status error', false)
    .option('--max-pixels <n>', 'images (and masks) with more pixels (width × height) become error rows, checked from the header', intFlag('--max-pixels', { min: 1 }), DEFAULT_MAX_PIXELS)
    .option('--follow-symlinks', 'folder:<path>: read files whose real path lies outside the dataset root, instead of making them error rows naming the link', false)
    .option('--mask-foreground <values>', 'folder:<path> and waterbirds: the mask PNG values that are the object, e.g. 1,3 (trimaps) or 1-20 (label maps); default: every nonzero pixel')
    .addHelpText('after', `
Real datasets are read from <data-root>/<name>/ (or the release folder inside it):
  waterbirds  <data-root>/waterbirds/metadata.csv  (+ images, segmentations/)
  in9         <data-root>/in9/train/original/train/<class>/, test/<variant>/val/<class>/, test/fg_mask/val/
  cct         <data-root>/cct/eccv_18_annotation_files/*.json, eccv_18_all_images_sm/
  folder:<p>  <p>/<split>/<class>/<image> [+ masks/<split>/<class>/<stem>.png, boxes.csv, classes.txt]
Rows with per-image problems are kept with status 'error' and listed; structural problems stop with a message.
Exit status: 0 when done; 1 with --strict and any error row; 2 for a usage or data error; 3 for an environment
error (disk full, permission denied, too many open files, read-only file system, a truncated or corrupt file).
See docs/datasets.md.`)
    .action(async (name: string, o: {
      dataRoot?: string; corporaRoot?: string; seed?: number; size?: number; train?: number; val?: number; test?: number;
      correlation?: number; difficulty?: number; fgScale?: number; force: boolean; strict: boolean; maxPixels: number; followSymlinks: boolean;
      maskForeground?: string;
    }) => {
      const progress = progressReporter();
      const t0 = Date.now();
      const synth: Partial<SynthOptions> = {
        size: o.size, train: o.train, val: o.val, test: o.test, correlation: o.correlation, difficulty: o.difficulty, fgScale: o.fgScale,
      };
      let res;
      try {
        res = await ensureSourceManifest(name, {
          dataRoot: resolveRoot('data', o.dataRoot), corporaRoot: resolveRoot('corpora', o.corporaRoot), seed: o.seed, force: o.force, synth,
          progress: progress.report, log: (line) => process.stderr.write(`${line}\n`), maxPixels: o.maxPixels, followSymlinks: o.followSymlinks,
          maskForeground: o.maskForeground,
        });
      } finally {
        progress.stop();
      }
      const rows = res.rows ?? (await readSourceManifest(res.dir)).rows;
      process.stdout.write(`${name}: source manifest ${res.dir} (dataset root ${res.root}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      process.stdout.write(formatSummary(rows, res.metadata.class_names) + '\n');
      const errors = rows.filter((r) => r.status === 'error').length;
      if (errors && o.strict) {
        process.stderr.write(`error: ${errors} rows have status 'error' (--strict)\n`);
        process.exitCode = 1;
      }
    });
}
