import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, TOOL_VERSION, UserError, sha256Hex, stableStringify, writeFileAtomic,
  type ManifestMetadata,
} from '../../manifests/index.ts';
import { algorithmOf, infillOrigin, type InfillMethod, type Params } from '../infills/index.ts';
import { DEFAULT_MAX_PIXELS } from '../decode.ts';
import { sha256File } from '../../common/file-hash.ts';
import { recordedDatasetRoot } from '../../common/paths.ts';
import { stateDir } from './shards.ts';
import type { MethodPlan, RunContext } from './item.ts';
import type { Resolved } from './options.ts';

/**
 * What a corpus will be before any shard is written: its config (everything that decides its bytes), the hash
 * resume compares, and the manifest metadata. A run records it as `<corpus>/state/plan.json`, so that sharded
 * workers started with different options refuse each other, and `cfgen finalize` can stamp the corpus without being
 * told how it was made.
 */

/** The `format` of a plan file. */
export const PLAN_FORMAT = 'cfgen-corpus-plan';

/**
 * Method `m`'s folder, its corpus plan and its row plan for this run, the row plan registered in `ctx` so row jobs
 * find it. The first step for every method, whether one process or a sharded worker runs it.
 */
export async function planMethod(m: InfillMethod, r: Pick<Resolved, 'parsed' | 'source' | 'base'>, opts: ConfigOptions, shards: number, ctx: RunContext): Promise<{ dir: string; corpus: CorpusPlan; plan: MethodPlan }> {
  const params = r.parsed.get(m.name)!;
  const dir = join(r.base, m.name);
  const corpus = await corpusPlan(m, params, opts, r.source, shards);
  const plan: MethodPlan = { name: m.name, params, variants: corpus.config.variants as number, dir };
  ctx.methods[m.name] = plan;
  return { dir, corpus, plan };
}

/** `<corpus>/state/plan.json`. */
export interface CorpusPlan {
  format: typeof PLAN_FORMAT;
  tool_version: string;
  /** folder name, e.g. cf-tile */
  name: string;
  /** the manifest's method column, e.g. tile */
  method: string;
  kind: string;
  dataset: string;
  config: Record<string, unknown>;
  config_hash: string;
  source_digest: string;
  /** the parts' metadata before the corpus id is stamped into it */
  metadata: ManifestMetadata;
  /** how many shards: part-00000 … part-(shards−1) */
  shards: number;
}

/** The source manifest as a run sees it. */
export interface SourceInfo {
  dir: string;
  /** the dataset folder (absolute) */
  root: string;
  metadata: ManifestMetadata;
  digest: string;
}

/** The run options a corpus config depends on. */
export interface ConfigOptions {
  variants: number;
  size: number | null;
  seed: number;
  splits: string[];
  format: string;
  shardSize: number;
  maxPixels?: number;
}

/**
 * The corpus config of method `m`: everything that decides its bytes. Keys that only some runs have (file hashes of
 * model methods, the plugin that registered the method, a raised pixel limit) are added only then, so the configs,
 * hence the corpus ids, of every other run stay what they were.
 */
export async function corpusConfig(m: InfillMethod, params: Params, o: ConfigOptions, source: SourceInfo): Promise<Record<string, unknown>> {
  const variants = m.deterministic ? 1 : o.variants;
  const config: Record<string, unknown> = {
    dataset: source.metadata.dataset, method: m.name, algorithm: algorithmOf(m, params), kind: m.kind, params, variants, size: o.size, seed: o.seed,
    splits: o.splits, format: o.format, shard_size: o.shardSize, source_manifest: basename(source.dir),
  };
  if (m.fileHashes) config.files_sha256 = await m.fileHashes(params);
  const origin = infillOrigin(m.name);
  if (origin) config.plugin = await pluginRecord(origin);
  const maxPixels = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (maxPixels !== DEFAULT_MAX_PIXELS) config.max_pixels = maxPixels;
  return config;
}

/**
 * The plugin module behind a registered method: its path (project-relative inside the repository, like other
 * recorded paths) and the SHA-256 of its source, so editing the plugin is a config change like editing a param.
 */
async function pluginRecord(moduleUrl: string): Promise<{ module: string; sha256: string | null }> {
  if (!moduleUrl.startsWith('file:')) return { module: moduleUrl, sha256: null };
  const file = fileURLToPath(moduleUrl);
  let sha256: string;
  try {
    sha256 = await sha256File(file);
  } catch (e) {
    throw new UserError(`cannot read the plugin that registered this method (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      file, fix: 'restore the plugin module (its source is hashed into the corpus config)',
    });
  }
  return { module: recordedDatasetRoot(file), sha256 };
}

/** The plan of method `m`'s corpus for this run. */
export async function corpusPlan(m: InfillMethod, params: Params, o: ConfigOptions, source: SourceInfo, shards: number): Promise<CorpusPlan> {
  const config = await corpusConfig(m, params, o, source);
  const configHash = sha256Hex(stableStringify({ config, source_digest: source.digest, tool_version: TOOL_VERSION }));
  const metadata: ManifestMetadata = {
    format: MANIFEST_FORMAT, format_version: MANIFEST_FORMAT_VERSION, kind: 'corpus', dataset: source.metadata.dataset,
    class_names: source.metadata.class_names, tool_version: TOOL_VERSION, seed: o.seed, config, source_digest: source.digest,
    dataset_root: recordedDatasetRoot(source.root),
  };
  return {
    format: PLAN_FORMAT, tool_version: TOOL_VERSION, name: m.name, method: m.method, kind: m.kind, dataset: source.metadata.dataset,
    config, config_hash: configHash, source_digest: source.digest, metadata, shards,
  };
}

/** `<corpus>/state/plan.json`. */
export const planPath = (dir: string): string => join(stateDir(dir), 'plan.json');

/** The plan recorded in a corpus folder, or null when there is none. A plan that does not parse is a UserError. */
export async function readPlan(dir: string): Promise<CorpusPlan | null> {
  let text: string;
  try {
    text = await readFile(planPath(dir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let plan: CorpusPlan | null = null;
  try { plan = JSON.parse(text) as CorpusPlan; } catch { /* below */ }
  if (!plan || plan.format !== PLAN_FORMAT || typeof plan.config_hash !== 'string' || !Number.isInteger(plan.shards)) {
    throw new UserError('not a corpus plan (damaged?)', { file: planPath(dir), fix: `regenerate the corpus: generate … --force (a single process), or remove ${dir}` });
  }
  return plan;
}

const planBytes = (plan: CorpusPlan): string => `${stableStringify(plan, 2)}\n`;

/** Record the plan of a corpus this process holds the lock of (a single-process run): replaces any older one. */
export async function writePlan(dir: string, plan: CorpusPlan): Promise<void> {
  await writeFileAtomic(planPath(dir), planBytes(plan));
}

/**
 * Sharded workers: record the plan unless one is there, atomically (written aside, then hard-linked into place, which
 * fails if another worker got there first), and refuse when the one there is another configuration's: workers
 * started with different options would otherwise write shards that finalize can never join.
 */
export async function pinPlan(dir: string, plan: CorpusPlan): Promise<void> {
  await mkdir(stateDir(dir), { recursive: true });
  // named like writeFileAtomic's temp files, so finalize sweeps it if this process dies before removing it
  const aside = `${planPath(dir)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFileAtomic(aside, planBytes(plan));
  try {
    await link(aside, planPath(dir));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    await rm(aside, { force: true });
  }
  const there = await readPlan(dir);
  if (there && there.config_hash !== plan.config_hash) {
    throw new UserError(`${dir} is being generated with another configuration (its state/plan.json differs from this worker's options)`, {
      file: planPath(dir),
      fix: 'start every worker with the same options; to replace that corpus, remove the folder once no worker runs (or run one `generate --force` without sharding)',
    });
  }
}

/**
 * A corpus folder's corpus.json against this run's config: nothing there yet ('none', the folder is created), the
 * same config ('same'), or another config: a UserError unless `force`.
 */
export async function checkSameConfig(dir: string, configHash: string, name: string): Promise<'none' | 'same'> {
  let old: { config_hash?: string };
  try {
    old = JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8'));
  } catch {
    await mkdir(dir, { recursive: true });
    return 'none';
  }
  if (old.config_hash !== configHash) {
    throw new UserError(`${dir} already holds a ${name} corpus generated with a different configuration`, {
      file: join(dir, 'corpus.json'),
      fix: 'pass --force to replace it (a single process, not a sharded worker), or use another --corpora-root',
    });
  }
  return 'same';
}
