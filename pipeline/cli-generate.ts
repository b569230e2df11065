import { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { choiceFlag, intFlag, listFlag, numberFlag } from '../common/flags.ts';
import { datasetSlug, resolveRoot, rootHelp } from '../common/paths.ts';
import { DEFAULT_METHODS, listInfills, type Params } from './infills/index.ts';
// cf-cagan (ONNX inpainting) registers itself; it joins the default methods whenever its model card exists.
import './inpaint/infill.ts';
import { reportCaganProvenanceFor } from './inpaint/provenance.ts';
import { claimTiming, createProgress, finalizeCorpus, GENERATE_DEFAULTS, planPath, runGenerate, type GenerateSummary } from './generate/index.ts';
import { verifyCorpus } from './verify.ts';
import { writeSampleGrid } from './sample-grid.ts';
import { STRESS_FOLDER } from './stress/run.ts';
import { DEFAULT_MAX_PIXELS, type ImageFormat } from './decode.ts';
import { loadPlugins } from './plugins.ts';
import { corporaIn, foldersHolding } from './corpus-folders.ts';
import { repairCommand, type CorpusInfo } from './repair-hint.ts';

const collect = (v: string, prev: string[]) => [...prev, v];

/** `--param cf-random.grid=4x4` → { 'cf-random': { grid: '4x4' } }; values that parse as JSON are taken as JSON. */
export function parseParamFlags(flags: string[]): Record<string, Params> {
  const out: Record<string, Params> = {};
  for (const f of flags) {
    const m = /^([a-z0-9-]+)\.([A-Za-z0-9_]+)=(.*)$/.exec(f);
    if (!m) throw new UserError(`bad --param "${f}"`, { fix: 'write it as <method>.<key>=<value>, e.g. --param cf-random.grid=4x4' });
    let value: unknown = m[3];
    try { value = JSON.parse(m[3]); } catch { /* a plain string */ }
    (out[m[1]] ??= {})[m[2]] = value;
  }
  return out;
}

/** A dataset's folder under the corpora root. */
function datasetBase(dataset: string, corporaRoot: string): string {
  return join(corporaRoot, datasetSlug(dataset));
}

function methodHelp(): string {
  const rows = listInfills().map((m) => `  ${m.name.padEnd(14)} ${m.description}; defaults ${JSON.stringify(m.defaults)}`);
  return `\nMethods:\n${rows.join('\n')}\n\n${EXIT_HELP}\nA plugin is code you run: --plugin imports it into this process and every worker thread, with your permissions.\nSee docs/generate.md.\n`;
}

/** The exit statuses, as --help prints them (docs/generate.md has the same list). */
const EXIT_HELP = `Exit status: 0 when done; 1 with --strict and any error row, or when error rows exceed --max-error-rate
(skipped rows, e.g. an empty mask, never count); 2 for a usage or data error that stops the run (bad flag, unknown
method, config clash without --force, missing dataset); 3 for an environment error (disk full, permission denied,
too many open files, read-only file system, a truncated or corrupt file, the corpus locked by another run).`;

function printSummary(s: GenerateSummary): void {
  const w = Math.max(...s.methods.map((m) => m.name.length));
  if (s.sharding) process.stdout.write(`worker ${s.sharding.index} of ${s.sharding.count} (${s.sharding.from})\n`);
  for (const m of s.methods) {
    const id = m.corpusId ? `id ${m.corpusId.slice(0, 16)}` : `not finalized (${m.note ?? 'unfinished'})`;
    process.stdout.write(`${m.name.padEnd(w)}  ok ${m.counts.ok}  skipped ${m.counts.skipped}  errors ${m.counts.error}  shards ${m.shards} (resumed ${m.resumedShards})  ${id}  ${m.dir}\n`);
  }
  const rate = s.seconds > 0 ? s.imagesWritten / s.seconds : 0;
  process.stdout.write(`done: ${s.counts.ok} ok, ${s.counts.skipped} skipped, ${s.counts.error} errors; ${s.rowsProcessed} source rows processed, ${s.imagesWritten} images written in ${s.seconds.toFixed(1)}s (${rate.toFixed(1)} images/s)\n`);
  if (s.exitReason) process.stderr.write(`error: ${s.exitReason}\n`);
}

export function generateCommand(): Command {
  const d = GENERATE_DEFAULTS;
  return new Command('generate')
    .description('generate counterfactual (CF) and factual (F) corpora: images + Arrow manifests, deterministic and resumable')
    .option('--dataset <name>', 'dataset: synth-waterbirds | waterbirds | in9 | cct | synth-* | folder:<path>', d.dataset)
    .option('--methods <list>', `comma list of methods (default: ${DEFAULT_METHODS.join(',')}, plus cf-cagan when registered and its model exists)`, listFlag('--methods', { nonEmpty: true }))
    .option('--variants <k>', 'draws per source image for random methods (grey/tile are deterministic: always 1)', intFlag('--variants', { min: 1, max: 1000 }), d.variants)
    .option('--size <px>', 'resize images to size×size (masks resized so the object never shrinks); 0 keeps the stored size', intFlag('--size', { min: 0, max: 4096 }), 0)
    .option('--seed <n>', 'generation seed: item rng = rngFor(seed, source_id, method, variant)', intFlag('--seed', { min: 0 }), d.seed)
    .option('--workers <n>', 'worker threads for decode/infill/encode (1 = this thread); output is identical for any value', intFlag('--workers', { min: 1, max: 256 }), d.workers)
    .option('--splits <list>', 'source splits to augment; CF/F images are training data, so train only by default (e.g. train,val)', listFlag('--splits', { nonEmpty: true }), [...d.splits])
    .option('--shard-size <n>', 'source rows per manifest shard (the unit of resume)', intFlag('--shard-size', { min: 1 }), d.shardSize)
    .option('--format <fmt>', 'image format: png (lossless) | jpg (quality 95)', choiceFlag('--format', ['png', 'jpg'] as const), d.format)
    .option('--param <method.key=value>', 'method parameter, repeatable: cf-random.grid=4x4, f-shuffle.scope=batch, cf-tile.mode=strip', collect, [])
    .option('--strict', 'exit 1 if any row is an error', false)
    .option('--max-error-rate <r>', 'exit 1 if error rows / all rows exceed this', numberFlag('--max-error-rate', { min: 0, max: 1 }), d.maxErrorRate)
    .option('--corpora-root <dir>', rootHelp('corpora', 'where corpora (and source manifests) go'))
    .option('--data-root <dir>', rootHelp('data', 'where datasets live (dataset X in <data-root>/X)'))
    // No default: without it an existing dataset build is reused as is (a default seed would rebuild it with default sizes).
    .option('--dataset-seed <n>', 'seed for building/ingesting the dataset (synthetic data), independent of --seed (default: reuse an existing build, else 0)', intFlag('--dataset-seed', { min: 0 }))
    .option('--source <dir>', 'generate from this source manifest folder instead of ingesting --dataset (corpora go beside it)')
    .option('--source-root <dir>', 'dataset root for --source (default: the manifest\'s config.root)')
    .option('--plugin <module>', 'import a module that registers infills, repeatable. A plugin is code you run: it gets your permissions (docs/generate.md)', collect, [])
    .option('--allow-plugin-override', 'let a --plugin replace a built-in method (cf-grey, ..., cf-cagan); its corpus config then records the plugin', false)
    .option('--force', 'replace corpora that were generated with another configuration', false)
    .option('--verify', 'on resume, re-hash every image of every finished shard and regenerate the shards with missing or modified files (repairs what `verify` reports)', false)
    .option('--max-pixels <n>', 'images with more pixels (width × height) become error rows, checked from the header before decoding', intFlag('--max-pixels', { min: 1 }), DEFAULT_MAX_PIXELS)
    .option('--follow-symlinks', 'folder:<path> datasets: read files whose real path lies outside the dataset root, instead of making them error rows', false)
    .option('--mask-foreground <values>', 'folder:<path> and waterbirds: the mask PNG values that are the object, e.g. 1,3 (trimaps); default: every nonzero pixel (see `cfgen dataset --help`)')
    .option('--shard-index <i>', 'sharded generation: this worker\'s index in [0, --shard-count); it writes shards s with s mod N = i (default: $SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX; docs/cluster.md)', intFlag('--shard-index', { min: 0 }))
    .option('--shard-count <n>', 'sharded generation: the number of workers (default: $CFGEN_SHARD_COUNT, else $SLURM_ARRAY_TASK_COUNT)', intFlag('--shard-count', { min: 1, max: 100000 }))
    .option('--quiet', 'no progress output', false)
    .addHelpText('after', methodHelp())
    .action(async (o) => {
      const log = o.quiet ? () => {} : (l: string) => process.stderr.write(`${l}\n`);
      await loadPlugins(o.plugin, { allowOverride: o.allowPluginOverride, log });
      await reportCaganProvenanceFor({ methods: o.methods, params: parseParamFlags(o.param), dataset: o.dataset, source: o.source }, (l) => process.stderr.write(`${l}\n`));
      const summary = await runGenerate({
        dataset: o.dataset, methods: o.methods, variants: o.variants, size: o.size || null, seed: o.seed, workers: o.workers,
        splits: o.splits, shardSize: o.shardSize, strict: o.strict, maxErrorRate: o.maxErrorRate, corporaRoot: resolveRoot('corpora', o.corporaRoot),
        dataRoot: resolveRoot('data', o.dataRoot), format: o.format as ImageFormat, params: parseParamFlags(o.param), force: o.force,
        datasetSeed: o.datasetSeed, sourceDir: o.source, sourceRoot: o.sourceRoot, progress: createProgress({ quiet: o.quiet }),
        verify: o.verify, maxPixels: o.maxPixels, followSymlinks: o.followSymlinks, maskForeground: o.maskForeground, shardIndex: o.shardIndex, shardCount: o.shardCount, log,
      });
      printSummary(summary);
      process.exitCode = summary.exitCode;
    });
}

export function verifyCommand(): Command {
  return new Command('verify')
    .description('re-hash every file of a corpus against its manifest; list missing and modified files (exit 1 if any)')
    .argument('[corpus-dirs...]', 'corpus folders (default: every corpus of --dataset)')
    .option('--dataset <name>', 'dataset whose corpora to check', GENERATE_DEFAULTS.dataset)
    .option('--methods <list>', 'only these methods (default: all corpora found)', listFlag('--methods', { nonEmpty: true }))
    .option('--corpora-root <dir>', rootHelp('corpora', 'where corpora live'))
    .action(async (dirs: string[], o) => {
      if (!dirs.length) {
        const base = datasetBase(o.dataset, resolveRoot('corpora', o.corporaRoot));
        dirs = (o.methods ?? (await corporaIn(base))).map((m: string) => join(base, m));
        if (!dirs.length) throw new UserError('no corpora to verify', { file: base, fix: 'run `make generate` first' });
      }
      let bad = 0;
      for (const dir of dirs) {
        const r = await verifyCorpus(dir);
        process.stdout.write(`${r.ok ? 'ok      ' : 'FAILED  '}${dir}: ${r.checked} files checked, ${r.missing.length} missing, ${r.modified.length} modified${r.extra.length ? `, ${r.extra.length} extra (not an error)` : ''}\n`);
        for (const f of r.missing) process.stdout.write(`  missing   ${f}\n`);
        for (const f of r.modified) process.stdout.write(`  modified  ${f}\n`);
        for (const p of r.problems) process.stdout.write(`  problem   ${p}\n`);
        if (!r.ok) {
          bad++;
          const info = JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8')) as CorpusInfo;
          process.stdout.write(`  fix: ${repairCommand(dir, info)}\n`);
          process.stdout.write('       (re-hashes every shard and regenerates the damaged ones; the same options give the same bytes and corpus id)\n');
        }
      }
      if (bad) process.exitCode = 1;
    });
}

/** Corpus folders under a dataset's corpora folder that a sharded run has started (state/plan.json) or finished. */
function startedCorpora(base: string): Promise<string[]> {
  return foldersHolding(base, planPath, { fix: 'run the generate workers first' });
}

export function finalizeCommand(): Command {
  return new Command('finalize')
    .description('finish corpora written by sharded generate workers: check every shard is done, stamp the corpus id, write corpus.json')
    .argument('[corpus-dirs...]', 'corpus folders (default: every corpus of --dataset that a generate has started)')
    .option('--dataset <name>', 'dataset whose corpora to finalize', GENERATE_DEFAULTS.dataset)
    .option('--methods <list>', 'only these methods', listFlag('--methods', { nonEmpty: true }))
    .option('--corpora-root <dir>', rootHelp('corpora', 'where corpora live'))
    .option('--source <dir>', 'the corpora beside this source manifest folder (as generate --source), instead of --dataset')
    .option('--shard-count <n>', 'the workers\' count (default $CFGEN_SHARD_COUNT): names the tasks to resubmit when shards are missing', intFlag('--shard-count', { min: 1, max: 100000 }))
    .option('--wait <s>', 'wait this long for a process that holds the corpus lock (a worker finalizing it)', intFlag('--wait', { min: 0 }), 600)
    .option('--quiet', 'no log lines', false)
    .addHelpText('after', '\nExit status: 0 when every corpus is complete; 1 when a shard is not done (the message names it and the tasks to\nresubmit); 2 for a usage error; 3 when a lock stays held or a file cannot be read. See docs/cluster.md.\n')
    .action(async (dirs: string[], o) => {
      const log = o.quiet ? () => {} : (l: string) => process.stderr.write(`${l}\n`);
      if (!dirs.length) {
        const base = o.source ? dirname(resolve(o.source)) : datasetBase(o.dataset, resolveRoot('corpora', o.corporaRoot));
        dirs = (o.methods ?? (await startedCorpora(base))).map((m: string) => join(base, m));
        if (!dirs.length) throw new UserError('no corpora to finalize', { file: base, fix: 'run the generate workers first' });
      }
      const envCount = process.env.CFGEN_SHARD_COUNT ? intFlag('CFGEN_SHARD_COUNT', { min: 1 })(process.env.CFGEN_SHARD_COUNT) : undefined;
      let bad = 0;
      for (const dir of dirs) {
        const r = await finalizeCorpus(dir, { timing: claimTiming(), log, waitMs: o.wait * 1000, shardCount: o.shardCount ?? envCount });
        if (r.result.state === 'done') {
          const c = r.result.counts;
          process.stdout.write(`ok      ${r.name}: ${r.result.shards} shards, ok ${c.ok}, skipped ${c.skipped}, errors ${c.error}  id ${r.result.corpusId}  ${dir}\n`);
          continue;
        }
        bad++;
        process.stdout.write(`FAILED  ${r.name}: not finalized  ${dir}\n`);
        for (const line of r.result.state === 'busy' ? [r.result.why] : r.result.why) process.stdout.write(`  ${line}\n`);
      }
      if (bad) process.exitCode = 1;
    });
}

export function sampleGridCommand(): Command {
  return new Command('sample-grid')
    .description('write a PNG contact sheet: originals in the first column, then one column per CF/F corpus (paper Fig. 2)')
    .option('--dataset <name>', 'dataset', GENERATE_DEFAULTS.dataset)
    .option('--methods <list>', 'corpora to show, CF first then F (default: all found)', listFlag('--methods', { nonEmpty: true }))
    .option('--rows <n>', 'number of source images', intFlag('--rows', { min: 1, max: 1000 }), 6)
    .option('--cell <px>', 'cell size in pixels', intFlag('--cell', { min: 8, max: 4096 }), 128)
    .option('--seed <n>', 'which images are picked', intFlag('--seed', { min: 0 }), 0)
    .option('--split <name>', 'only images of this split')
    .option('--corpora-root <dir>', rootHelp('corpora', 'where corpora live'))
    .option('--out <file>', 'output PNG (default <corpora-root>/<dataset>/sample-grid.png)')
    .action(async (o) => {
      const base = datasetBase(o.dataset, resolveRoot('corpora', o.corporaRoot));
      // the stress-test eval corpus has its own grid (written beside it by `stress-test`), not a column here
      const methods: string[] = o.methods ?? (await corporaIn(base)).filter((m) => m !== STRESS_FOLDER);
      const res = await writeSampleGrid({ base, methods, rows: o.rows, cell: o.cell, seed: o.seed, split: o.split, out: o.out ?? join(base, 'sample-grid.png') });
      process.stdout.write(`wrote ${res.out} (${res.sources.length} rows × ${methods.length + 1} columns)\n`);
    });
}
