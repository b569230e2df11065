#!/usr/bin/env -S npx tsx
/**
 * The one command-line entry point. Subcommands are imported lazily so that `cfgen generate` never pays for
 * loading tfjs and `cfgen train` never loads the image pipeline.
 */
import { exitOnError } from './common/env-errors.ts';
import { boundHeapGrowth } from './common/heap.ts';
import { TOOL_VERSION } from './manifests/version.ts';
import type { Command } from 'commander';

const SUBCOMMANDS: Record<string, { about: string; load: () => Promise<Command> }> = {
  dataset: { about: 'build (synthetic) / ingest a dataset and write its source manifest', load: async () => (await import('./pipeline/cli-dataset.ts')).datasetCommand() },
  generate: { about: 'generate counterfactual and factual corpora to disk', load: async () => (await import('./pipeline/cli-generate.ts')).generateCommand() },
  finalize: { about: 'finish corpora written by sharded generate workers (stamp the corpus id, write corpus.json)', load: async () => (await import('./pipeline/cli-generate.ts')).finalizeCommand() },
  verify: { about: 're-hash a corpus against its manifest', load: async () => (await import('./pipeline/cli-generate.ts')).verifyCommand() },
  'sample-grid': { about: 'write a PNG contact sheet: originals beside their CF and F images', load: async () => (await import('./pipeline/cli-generate.ts')).sampleGridCommand() },
  export: { about: 'export corpora as Parquet (Hugging Face datasets) or WebDataset shards, with a dataset card', load: async () => (await import('./pipeline/cli-export.ts')).exportCommand() },
  'stress-test': { about: 'build IN-9-style background-robustness test variants of a dataset (an eval corpus)', load: async () => (await import('./pipeline/cli-stress.ts')).stressTestCommand() },
  inpainter: { about: 'train our small inpainter and export it to ONNX (models/)', load: async () => (await import('./trainer/inpainter/cli.ts')).inpainterCommand() },
  train: { about: 'train a classifier on a dataset and its corpora (METHOD spec)', load: async () => (await import('./trainer/cli-train.ts')).trainCommand() },
  eval: { about: 'evaluate a training run at its best-validation checkpoint', load: async () => (await import('./trainer/cli-train.ts')).evalCommand() },
  'export-weights': { about: 'write a checkpoint as a BiT .npz or a timm .safetensors (what --init reads)', load: async () => (await import('./trainer/weights/cli-export.ts')).exportWeightsCommand() },
  report: { about: 'write a results report (tables, charts, saliency, sample grids) over training runs', load: async () => (await import('./report/cli.ts')).reportCommand() },
};

function usage(): string {
  const w = Math.max(...Object.keys(SUBCOMMANDS).map((k) => k.length));
  return [
    `cfgen ${TOOL_VERSION}: counterfactual and factual data generation for background-robust classifiers`,
    '',
    'usage: npx tsx cfgen.ts <command> [options]     (each command has --help)',
    '',
    'commands:',
    ...Object.entries(SUBCOMMANDS).map(([k, v]) => `  ${k.padEnd(w)}  ${v.about}`),
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<void> {
  boundHeapGrowth();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${TOOL_VERSION}\n`);
    return;
  }
  const sub = SUBCOMMANDS[name];
  if (!sub) {
    process.stderr.write(`error: unknown command "${name}"\n\n${usage()}`);
    process.exit(2);
  }
  const cmd = await sub.load();
  cmd.name(`cfgen ${name}`);
  await cmd.parseAsync(rest, { from: 'user' });
}

// environment errors (disk full, permissions, ...) exit 3 with one paragraph; UserErrors exit 2; bugs keep their stack
main(process.argv.slice(2)).catch((e) => exitOnError(e));
