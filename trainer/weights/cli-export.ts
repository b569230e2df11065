import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { choiceFlag } from '../../common/flags.ts';
import { resolveRoot, rootHelp } from '../../common/paths.ts';
import { UserError } from '../../manifests/errors.ts';
import { EXPORT_FORMATS, exportCheckpoint, formatOfFile, type ExportFormat } from './export.ts';

/**
 * `cfgen export-weights`: one of our checkpoints as a BiT `.npz` or a timm `.safetensors` (export.ts). No tfjs
 * backend is started: the checkpoint is read as bytes and rewritten.
 */

/** The checkpoint folder `--run` names: a checkpoint folder itself, else the run's best (or last) checkpoint. */
export async function checkpointDirOf(run: string, runsRoot: string, which: 'best' | 'last'): Promise<string> {
  const dir = run.includes('/') ? resolve(run) : join(runsRoot, run);
  if (existsSync(join(dir, 'model.json'))) return dir;
  if (!existsSync(join(dir, 'config.json'))) {
    throw new UserError('neither a training run (no config.json) nor a checkpoint folder (no model.json)', { file: dir, fix: 'give --run <run-id> of a folder under --runs-root, a run folder, or a checkpoint folder such as runs/<id>/best' });
  }
  const { bestCheckpoint } = await import('../run-resume.ts');
  const { readCommit } = await import('../run-commit.ts');
  const commit = await readCommit(dir);
  const ck = which === 'best' ? (await bestCheckpoint(dir)).bestDir : commit ? join(dir, commit.last) : join(dir, 'last');
  if (!existsSync(join(ck, 'model.json'))) {
    throw new UserError(`the run has no ${which} checkpoint yet`, { file: ck, fix: 'train the run until at least one epoch has finished (rerun the same cfgen train command to resume it)' });
  }
  return ck;
}

export function exportWeightsCommand(): Command {
  return new Command('export-weights')
    .description('Write a checkpoint of ours as Google\'s BiT .npz (BiT names, HWIO float32 .npy in a zip) or timm\'s\n'
      + '.safetensors (timm names, OIHW), the files `cfgen train --init` (and numpy, timm, BiT\'s code) read.\n'
      + 'The model config rides along in metadata those tools ignore, so any preset round-trips (docs/pretrained.md).')
    .requiredOption('--run <id|path>', 'run id (a folder under --runs-root), a run folder, or a checkpoint folder (holds model.json)')
    .requiredOption('--out <file>', 'the file to write: <name>.npz or <name>.safetensors')
    .addOption(new Option('--format <f>', `${EXPORT_FORMATS.join(' | ')} (default: from --out's extension)`).argParser(choiceFlag('--format', EXPORT_FORMATS)))
    .addOption(new Option('--checkpoint <which>', 'which checkpoint of a run: best (validation) or last').argParser(choiceFlag('--checkpoint', ['best', 'last'] as const)).default('best'))
    .option('--compress', '.npz only: deflate the arrays (numpy.savez_compressed)', false)
    .option('--runs-root <dir>', rootHelp('runs', 'where runs live'))
    .action(async (o: { run: string; out: string; format?: ExportFormat; checkpoint: 'best' | 'last'; compress: boolean; runsRoot?: string }) => {
      const format = o.format ?? formatOfFile(o.out);
      if (!format) throw new UserError('cannot tell the format from the file name', { file: o.out, fix: 'name it <name>.npz or <name>.safetensors (or pass --format and the matching extension)' });
      const dir = await checkpointDirOf(o.run, resolveRoot('runs', o.runsRoot), o.checkpoint);
      const r = await exportCheckpoint(dir, resolve(o.out), format, { compress: o.compress });
      process.stdout.write(`wrote ${r.file}: ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(2)} MiB, ${format === 'npz' ? 'BiT .npz' : 'timm .safetensors'}, sha256 ${r.sha256}\n`
        + `from ${dir}\nuse it with: npx tsx cfgen.ts train --init ${r.file}\n`);
    });
}
