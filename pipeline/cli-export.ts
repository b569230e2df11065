import { Command } from 'commander';
import { join } from 'node:path';
import { UserError } from '../manifests/errors.ts';
import { choiceFlag, intFlag, listFlag } from '../common/flags.ts';
import { datasetSlug, resolveRoot, rootHelp } from '../common/paths.ts';
import { createProgress } from './generate/progress.ts';
import { corporaIn } from './corpus-folders.ts';
import { DEFAULT_SHARD_ROWS, EXPORT_FORMATS, defaultExportDir, exportCorpus, type ExportFormat } from './export/index.ts';

const HELP = `
Output: --out, else <corpus>/export/<format>/, holding data/<split>-*.parquet or data/<split>-*.tar, README.md (the
dataset card) and export.json (provenance, every file's SHA-256). An earlier export there is replaced as a whole.
Only rows with an image (status ok) are exported, in manifest order. The same corpus and options give byte-identical
files. See docs/export.md.

Exit status: 0 when done; 2 for a usage or data error (bad flag, unfinished corpus, a file that differs from its
manifest row); 3 for an environment error (disk full, permission denied, the folder locked by another export).
`;

/** Corpus folders of a dataset; the stress-test eval corpus only when named. */
function corporaOf(base: string): Promise<string[]> {
  return corporaIn(base, (n) => n.startsWith('.') || n === 'source' || n === 'stress-test');
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** `cfgen export`: corpora as Parquet (Hugging Face `datasets`) or WebDataset shards. */
export function exportCommand(): Command {
  return new Command('export')
    .description('export corpora as Parquet shards (Hugging Face datasets layout, images embedded) or WebDataset tar shards, with a dataset card')
    .argument('[corpus-dirs...]', 'corpus folders (default: every corpus of --dataset, or the --methods ones)')
    .option('--format <fmt>', `output format: ${EXPORT_FORMATS.join(' | ')}`, choiceFlag('--format', EXPORT_FORMATS), 'parquet' as ExportFormat)
    .option('--dataset <name>', 'dataset whose corpora to export', 'synth-waterbirds')
    .option('--methods <list>', 'only these corpora, e.g. cf-tile,f-random (stress-test: the eval corpus)', listFlag('--methods', { nonEmpty: true }))
    .option('--out <dir>', 'output folder, for one corpus (default: <corpus>/export/<format>/)')
    .option('--shard-rows <n>', 'rows per shard (each split\'s last shard may hold fewer)', intFlag('--shard-rows', { min: 1, max: 1_000_000 }), DEFAULT_SHARD_ROWS)
    .option('--corpora-root <dir>', rootHelp('corpora', 'where corpora live'))
    .option('--quiet', 'no progress output', false)
    .addHelpText('after', HELP)
    .action(async (dirs: string[], o) => {
      if (!dirs.length) {
        const base = join(resolveRoot('corpora', o.corporaRoot), datasetSlug(o.dataset));
        dirs = (o.methods ?? (await corporaOf(base))).map((m: string) => join(base, m));
        if (!dirs.length) throw new UserError('no finished corpora to export', { file: base, fix: 'run `make generate` first' });
      } else if (o.methods) {
        throw new UserError('give corpus folders or --methods, not both', { fix: 'drop the folders to export --methods of --dataset' });
      }
      if (o.out && dirs.length > 1) {
        throw new UserError(`--out names one folder but ${dirs.length} corpora are exported`, { fix: 'export one corpus (name it, or --methods with one method) per --out, or leave --out out' });
      }
      for (const dir of dirs) {
        const s = await exportCorpus({
          dir, format: o.format, out: o.out ?? defaultExportDir(dir, o.format), shardRows: o.shardRows, progress: createProgress({ quiet: o.quiet }),
        });
        const left = s.leftOut.skipped + s.leftOut.error;
        process.stdout.write(`${s.out}: ${s.rows} rows in ${s.files.length} ${o.format} shard(s), ${mb(s.bytes)}`
          + `${left ? ` (${left} row${left === 1 ? '' : 's'} without an image left out)` : ''}, corpus ${s.corpusId.slice(0, 16)}, ${s.seconds.toFixed(1)}s\n`);
      }
    });
}
