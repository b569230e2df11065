import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Every root the toolkit reads or writes, resolved one way for every command: a flag, else the environment
 * variable, else the folder inside this repository. Nothing depends on the current folder, so `generate` run from
 * elsewhere writes where `train` later reads.
 */

/** The repository folder (the one holding cfgen.ts), wherever the command is run from. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The roots: datasets, source manifests + corpora, training runs, ONNX inpainters, reports. */
export const ROOT_NAMES = ['data', 'corpora', 'runs', 'models', 'reports'] as const;
export type RootName = (typeof ROOT_NAMES)[number];

/** The environment variable that overrides each root's default. */
export const ROOT_ENV: Readonly<Record<RootName, string>> = {
  data: 'CFGEN_DATA_ROOT',
  corpora: 'CFGEN_CORPORA_ROOT',
  runs: 'CFGEN_RUNS_ROOT',
  models: 'CFGEN_MODELS_ROOT',
  reports: 'CFGEN_REPORTS_ROOT',
};

/** The root used when no flag is given: `$CFGEN_<NAME>_ROOT` (made absolute), else `<PROJECT_ROOT>/<name>`. */
export function defaultRoot(name: RootName, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[ROOT_ENV[name]];
  return fromEnv ? resolve(fromEnv) : join(PROJECT_ROOT, name);
}

/** A root as an absolute path: the flag's value (relative to the current folder, as a shell user expects), else the default. */
export function resolveRoot(name: RootName, flag?: string | null, env: NodeJS.ProcessEnv = process.env): string {
  return flag ? resolve(flag) : defaultRoot(name, env);
}

/** The `--<name>-root` flag's help text, showing the default it resolves to now and where that comes from. */
export function rootHelp(name: RootName, what: string, env: NodeJS.ProcessEnv = process.env): string {
  const from = env[ROOT_ENV[name]] ? `from ${ROOT_ENV[name]}` : `env ${ROOT_ENV[name]} overrides it`;
  return `${what} (default: ${defaultRoot(name, env)}; ${from})`;
}

/** Where `models/<name>.card.json` of the built-in CAGAN inpainter lives. */
export function defaultCaganCard(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultRoot('models', env), 'cagan.card.json');
}

/**
 * How a source manifest records its dataset folder (`config.root`): relative to the project folder when it lies
 * inside it, so manifests (and the corpus ids hashed from them) are the same in every clone; absolute otherwise.
 */
export function recordedDatasetRoot(root: string): string {
  const abs = resolve(root);
  const rel = relative(PROJECT_ROOT, abs);
  if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return rel.split(sep).join('/');
  return abs;
}

/** The dataset folder a manifest's `config.root` names, as an absolute path (relative roots are project-relative). */
export function datasetRootOf(recorded: string): string {
  return isAbsolute(recorded) ? recorded : resolve(PROJECT_ROOT, recorded);
}

/**
 * The folder name under the corpora root (and the default run-id prefix) for a dataset name: itself, except
 * `folder:/x/pets` → `folder-pets`, which is a valid file name. Both halves use it, so they agree on where a
 * dataset's manifests live.
 */
export function datasetSlug(dataset: string): string {
  if (dataset.startsWith('folder:')) {
    const p = dataset.slice('folder:'.length).replace(/[\\/]+$/, '');
    return `folder-${basename(p).replace(/[^A-Za-z0-9._-]/g, '_')}`;
  }
  return dataset;
}
