import { Command } from 'commander';
import { join } from 'node:path';
import { choiceFlag, intFlag, listFlag } from '../common/flags.ts';
import { resolveRoot, rootHelp } from '../common/paths.ts';
import type { ImageFormat } from './decode.ts';
import { createProgress } from './generate/progress.ts';
import { writeStressGrid } from './stress/grid.ts';
import { STRESS_DEFAULTS, runStressTest, type StressSummary } from './stress/run.ts';
import { STRESS_VARIANTS, VARIANT_DOCS, type StressVariant } from './stress/variants.ts';

/**
 * `cfgen stress-test`: the background-robustness benchmark of any masked dataset (docs/stress-test.md). Builds the
 * IN-9-style variants of the test images as one eval corpus; `cfgen eval --stress` then scores a run on it.
 */

function variantHelp(): string {
  const w = Math.max(...STRESS_VARIANTS.map((v) => v.length));
  return `\nVariants:\n${STRESS_VARIANTS.map((v) => `  ${v.padEnd(w)}  ${VARIANT_DOCS[v]}`).join('\n')}\n\n`
    + 'Output: <corpora-root>/<dataset>/stress-test/ (images, manifest kind "eval", corpus.json) and its sample-grid.png.\n'
    + 'Exit status: 0 when done; 2 for a usage or data error. See docs/stress-test.md.\n';
}

function printSummary(s: StressSummary): void {
  const w = Math.max(...Object.keys(s.perVariant).map((v) => v.length));
  for (const v of s.variants) {
    const c = s.perVariant[v] ?? { ok: 0, skipped: 0, error: 0 };
    process.stdout.write(`${v.padEnd(w)}  ok ${c.ok}  skipped ${c.skipped}  errors ${c.error}\n`);
  }
  process.stdout.write(`done: splits ${s.splits.join(', ')}; attribute ${s.attribute ?? 'none'}; ${s.counts.ok} ok, ${s.counts.skipped} skipped, ${s.counts.error} errors; `
    + `${s.shards} shard(s) (resumed ${s.resumedShards}); ${s.imagesWritten} images written in ${s.seconds.toFixed(1)} s; id ${s.corpusId.slice(0, 16)}\n${s.dir}\n`);
}

/** The `stress-test` command. */
export function stressTestCommand(): Command {
  const d = STRESS_DEFAULTS;
  return new Command('stress-test')
    .description('build IN-9-style background-robustness variants (original, only_fg, no_fg, only_bg_b, only_bg_t, mixed_same, mixed_rand, mixed_next; attr_flip for Waterbirds place / CCT location) of a dataset\'s test images, as one deterministic, resumable eval corpus that `cfgen verify` checks and `cfgen eval --stress` scores')
    .option('--dataset <name>', 'dataset: synth-waterbirds | waterbirds | in9 | cct | synth-* | folder:<path>', d.dataset)
    .option('--splits <list>', 'splits whose images are varied (default: every split but train and val / cis_val)', listFlag('--splits', { nonEmpty: true }))
    .option('--variants <list>', `variants to write (default: all that apply): ${STRESS_VARIANTS.join(', ')}`, listFlag<StressVariant>('--variants', { choices: STRESS_VARIANTS, nonEmpty: true }))
    .option('--size <px>', 'resize images to size×size (masks never shrink the object); 0 keeps the stored size', intFlag('--size', { min: 0, max: 4096 }), 0)
    .option('--seed <n>', 'seed of the donor draws: rngFor(seed, source_id, "stress-test", variant, "donors")', intFlag('--seed', { min: 0 }), d.seed)
    .option('--candidates <n>', 'donors tried per mixed variant before the image is skipped (decode errors, no background to tile)', intFlag('--candidates', { min: 1, max: 64 }), d.candidates)
    .option('--concurrency <n>', 'source rows in flight (sharp decodes and encodes on its own threads)', intFlag('--concurrency', { min: 1, max: 256 }), d.concurrency)
    .option('--shard-size <n>', 'source rows per manifest shard (the unit of resume)', intFlag('--shard-size', { min: 1 }), d.shardSize)
    .option('--format <fmt>', 'image format: png (lossless) | jpg (quality 95)', choiceFlag('--format', ['png', 'jpg'] as const), d.format)
    .option('--corpora-root <dir>', rootHelp('corpora', 'where corpora (and source manifests) go'))
    .option('--data-root <dir>', rootHelp('data', 'where datasets live'))
    .option('--dataset-seed <n>', 'seed for building the dataset (synthetic data); default: reuse an existing build', intFlag('--dataset-seed', { min: 0 }))
    .option('--source <dir>', 'use this source manifest folder instead of building/ingesting --dataset (the corpus goes beside it)')
    .option('--source-root <dir>', 'dataset root for --source (default: the manifest\'s config.root)')
    .option('--grid-rows <n>', 'rows of the sample grid written beside the corpus (0: none)', intFlag('--grid-rows', { min: 0, max: 100 }), 6)
    .option('--force', 'replace a stress-test corpus built with another configuration', false)
    .option('--quiet', 'no progress output', false)
    .addHelpText('after', variantHelp())
    .action(async (o) => {
      const summary = await runStressTest({
        dataset: o.dataset, corporaRoot: resolveRoot('corpora', o.corporaRoot), dataRoot: resolveRoot('data', o.dataRoot),
        sourceDir: o.source, sourceRoot: o.sourceRoot, splits: o.splits, variants: o.variants, size: o.size || null, seed: o.seed,
        format: o.format as ImageFormat, shardSize: o.shardSize, concurrency: o.concurrency, candidates: o.candidates, force: o.force,
        datasetSeed: o.datasetSeed, progress: createProgress({ quiet: o.quiet }), log: o.quiet ? () => {} : undefined,
      });
      printSummary(summary);
      if (o.gridRows > 0 && summary.counts.ok > 0) {
        const g = await writeStressGrid({ dir: summary.dir, rows: o.gridRows, cell: 96, seed: o.seed, out: join(summary.dir, 'sample-grid.png') });
        process.stdout.write(`sample grid: ${g.out}\n`);
      }
    });
}
