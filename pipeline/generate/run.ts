import { readFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import {
  MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, TOOL_VERSION, UserError, manifestDigest, readSourceManifest, sha256Hex,
  stableStringify, writeJsonAtomic, type CorpusRow, type ManifestMetadata, type SourceRow,
} from '../../manifests/index.ts';
import { DEFAULT_METHODS, getInfill, infillOrigin, listInfills, pluginModules, type InfillMethod, type Params } from '../infills/index.ts';
import { DEFAULT_MAX_PIXELS, type ImageFormat } from '../decode.ts';
import { corruptFileError, environmentError } from '../../common/env-errors.ts';
import { sha256File } from '../../common/file-hash.ts';
import { CORPUS_LOCK, lockCorpora, releaseAll } from './locks.ts';
import { createRowRunner } from './pool.ts';
import { processBatchShard } from './batch.ts';
import { DonorIndex } from './donors.ts';
import type { MethodPlan, RowJob, RowResult, RunContext, WrittenFile } from './item.ts';
import { createProgress, type Progress } from './progress.ts';
import {
  clearCorpusDir, corpusIdOf, planShards, removeTempFiles, shardState, stampShards, writeShard, type ShardCounts, type DoneMarker,
} from './shards.ts';
import { datasetRootOf, defaultRoot, recordedDatasetRoot } from '../../common/paths.ts';

/**
 * `generate`: write CF/F corpora for a dataset, one folder per method:
 *   <corpora>/<dataset>/<method>/images/…            generated images (PNG by default)
 *   <corpora>/<dataset>/<method>/manifest/part-NNNNN.arrow + part-NNNNN.done
 *   <corpora>/<dataset>/<method>/corpus.json          corpus id, config, counts
 * Deterministic (item rng = rngFor(seed, source_id, method, variant)), resumable (fixed shards with done markers),
 * the same bytes for any worker count. Each corpus folder is locked (`.lock`) for the whole run, so a second run on
 * it fails fast instead of writing over the first.
 */

export interface GenerateOptions {
  dataset: string;
  /** registry names; default: DEFAULT_METHODS plus registered batch methods that report themselves ready */
  methods?: string[];
  variants: number;
  /** output side in px (images resized to size×size); null keeps the stored size */
  size: number | null;
  seed: number;
  workers: number;
  splits: string[];
  /** source rows per shard */
  shardSize: number;
  strict: boolean;
  maxErrorRate: number;
  corporaRoot: string;
  dataRoot: string;
  format: ImageFormat;
  /** per-method params, e.g. { 'cf-random': { grid: '4x4' } } */
  params: Record<string, Params>;
  /** replace corpora made with another config */
  force: boolean;
  /** on resume, re-hash every image of every done shard and regenerate the shards with missing or modified files */
  verify?: boolean;
  /** images with more pixels are error rows, refused from the header (default DEFAULT_MAX_PIXELS) */
  maxPixels?: number;
  /** folder datasets: read files whose real path lies outside the dataset root (symbolic links) */
  followSymlinks?: boolean;
  /** seed of the dataset build (synthetic datasets), kept apart from the generation seed */
  datasetSeed: number;
  /** use this source manifest folder (its parent becomes the corpora folder) instead of ensureSourceManifest */
  sourceDir?: string;
  /** dataset root for sourceDir (default: the manifest's metadata.config.root) */
  sourceRoot?: string;
  progress?: Progress;
  log?: (line: string) => void;
  /** test hook: after each shard's done marker */
  onShardDone?: (method: string, shard: number) => void | Promise<void>;
}

/**
 * Defaults for every option but the per-run ones. The roots are getters, read when the defaults are spread or used,
 * so they honour CFGEN_CORPORA_ROOT / CFGEN_DATA_ROOT as set at that moment (tests set them after import) and never
 * depend on the current folder.
 */
export const GENERATE_DEFAULTS = {
  dataset: 'synth-waterbirds', variants: 1, size: null, seed: 0, workers: 1, splits: ['train'], shardSize: 256,
  strict: false, maxErrorRate: 0.05, format: 'png', force: false, datasetSeed: 0, verify: false, maxPixels: DEFAULT_MAX_PIXELS,
  get corporaRoot(): string { return defaultRoot('corpora'); },
  get dataRoot(): string { return defaultRoot('data'); },
} as const satisfies Partial<GenerateOptions>;

/** One method's corpus after a run. */
export interface MethodSummary {
  name: string;
  dir: string;
  corpusId: string;
  counts: ShardCounts;
  shards: number;
  resumedShards: number;
}

/** What runGenerate did, and the exit status the CLI should return. */
export interface GenerateSummary {
  methods: MethodSummary[];
  counts: ShardCounts;
  /** source rows processed in this run (resumed shards excluded) */
  rowsProcessed: number;
  imagesWritten: number;
  seconds: number;
  errorRate: number;
  exitCode: number;
  exitReason: string | null;
}

interface MethodState {
  m: InfillMethod;
  plan: MethodPlan;
  config: Record<string, unknown>;
  configHash: string;
  metadata: ManifestMetadata;
  markers: (DoneMarker | null)[];
  resumed: number;
}

/**
 * The methods of a run: the named ones (unknown or repeated names are a UserError), or with no names the default
 * methods plus every registered batch method that says it can run now (cf-cagan when its model card is there).
 */
export async function resolveMethods(names: string[] | undefined): Promise<InfillMethod[]> {
  if (!names || names.length === 0) {
    const out: InfillMethod[] = DEFAULT_METHODS.map((n) => getInfill(n)!);
    for (const m of listInfills()) {
      if (m.mode === 'batch' && !out.includes(m) && !(await m.unavailableReason?.(m.defaults))) out.push(m);
    }
    return out;
  }
  const seen = new Set<string>();
  return names.map((n) => {
    const m = getInfill(n);
    if (!m) throw new UserError(`unknown method "${n}"`, { fix: `use any of: ${listInfills().map((x) => x.name).join(', ')}` });
    if (seen.has(n)) throw new UserError(`method "${n}" given twice`, { fix: 'list each method once in --methods' });
    seen.add(n);
    return m;
  });
}

async function loadSource(opts: GenerateOptions, log: (l: string) => void): Promise<{ dir: string; root: string; metadata: ManifestMetadata; rows: SourceRow[]; digest: string }> {
  let dir: string, root: string | undefined;
  if (opts.sourceDir) {
    dir = opts.sourceDir;
    root = opts.sourceRoot;
  } else {
    // loaded lazily: the dataset adapters are only needed when we ingest
    const { ensureSourceManifest } = await import('../datasets/index.ts');
    const ensured = await ensureSourceManifest(opts.dataset, {
      dataRoot: opts.dataRoot, corporaRoot: opts.corporaRoot, seed: opts.datasetSeed, log, progress: stageLines(log),
      maxPixels: opts.maxPixels, followSymlinks: opts.followSymlinks,
    });
    dir = ensured.dir;
    root = ensured.root;
  }
  const { metadata, rows, digest } = await readSource(dir, opts);
  root ??= typeof metadata.config.root === 'string' ? datasetRootOf(metadata.config.root) : undefined;
  if (!root) throw new UserError('the source manifest does not say where its dataset lives (metadata.config.root)', { file: dir, fix: 'pass --source-root <dataset folder>' });
  return { dir, root, metadata, rows, digest };
}

/**
 * Read the source manifest. A part that arrow cannot parse was cut short (a crash or a full disk while it was
 * written) or damaged: that is an environment error naming the file, not a stack trace.
 */
async function readSource(dir: string, opts: GenerateOptions): Promise<{ metadata: ManifestMetadata; rows: SourceRow[]; digest: string }> {
  try {
    const { metadata, rows } = await readSourceManifest(dir);
    return { metadata, rows, digest: await manifestDigest(dir, 'source') };
  } catch (e) {
    if (environmentError(e)) throw e;
    const fix = opts.sourceDir
      ? 'restore the source manifest folder given to --source, or rebuild it with `npx tsx cfgen.ts dataset <name> --force`'
      : `rebuild it: \`npx tsx cfgen.ts dataset ${opts.dataset} --force\` (then rerun generate)`;
    // manifests/reader.ts reports a shard that does not decode as a UserError naming it; older readers let arrow's
    // own TypeError through. Either way the file is damaged: an environment error, not a usage error.
    if (e instanceof UserError) {
      if (e.file && /cannot be decoded|truncated/i.test(e.message)) throw corruptFileError(e.file, e.message.slice(e.file.length + 2), fix);
      throw e;
    }
    throw corruptFileError(dir, (e as Error).message, fix);
  }
}

/**
 * Building or ingesting a dataset first can take a minute: report it through `log` as a line per stage change and
 * at most one every 5 s, so a log never sits silent.
 */
function stageLines(log: (l: string) => void, everyMs = 5000): (done: number, total: number, stage: string) => void {
  let last = 0, lastStage = '';
  return (done, total, stage) => {
    const now = Date.now();
    if (stage === lastStage && now - last < everyMs && done !== total) return;
    last = now; lastStage = stage;
    log(`dataset ${stage}: ${done}/${total} images`);
  };
}

export async function runGenerate(opts: GenerateOptions): Promise<GenerateSummary> {
  const t0 = Date.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  validateOptions(opts);
  const methods = await resolveMethods(opts.methods);
  for (const name of Object.keys(opts.params)) {
    if (!methods.some((m) => m.name === name)) throw new UserError(`--param given for "${name}", which is not in --methods`, { fix: `methods in this run: ${methods.map((m) => m.name).join(', ')}` });
  }
  const parsed = new Map<string, Params>();
  for (const m of methods) {
    try {
      parsed.set(m.name, m.parseParams(opts.params[m.name] ?? {}));
    } catch (e) {
      throw new UserError((e as Error).message, { fix: `see \`generate --help\` and docs/generate.md for ${m.name}'s parameters` });
    }
    if (m.mode === 'batch') {
      const why = await m.unavailableReason?.(parsed.get(m.name)!);
      if (why) throw new UserError(`${m.name} cannot run: ${why}`);
    }
  }

  const source = await loadSource(opts, log);
  const sourceDigest = source.digest;
  const rows = source.rows.filter((r) => opts.splits.includes(r.split));
  if (!rows.length) {
    const have = [...new Set(source.rows.map((r) => r.split))].join(', ') || 'none';
    throw new UserError(`no source rows in split(s) ${opts.splits.join(', ')}`, { file: source.dir, fix: `choose --splits among: ${have}` });
  }
  const seenIds = new Set<string>();
  for (const r of rows) {
    // ids name the output files and seed the rngs: a duplicate would overwrite another image
    if (seenIds.has(r.id)) throw new UserError(`source id "${r.id}" appears twice`, { file: source.dir, row: r.id, fix: 'rebuild the source manifest (make dataset); ids must be unique' });
    seenIds.add(r.id);
  }
  const base = dirname(resolve(source.dir));
  // every corpus folder stays locked until its corpus.json is written: nothing below runs while another run writes
  const locks = await lockCorpora(methods.map((m) => ({ name: m.name, dir: join(base, m.name) })), log);
  try {
    return await generateLocked(opts, { methods, parsed, source, rows, base, log, t0 });
  } finally {
    // releaseAll never throws, so it cannot replace an error on its way out
    await releaseAll(locks);
  }
}

/** What runGenerate has settled before it takes the corpus locks. */
interface Resolved {
  methods: InfillMethod[];
  parsed: Map<string, Params>;
  source: { dir: string; root: string; metadata: ManifestMetadata; digest: string };
  rows: SourceRow[];
  base: string;
  log: (l: string) => void;
  t0: number;
}

/**
 * The corpus config of method `m`: everything that decides its bytes. Keys that only some runs have (file hashes of
 * model methods, the plugin that registered the method, a raised pixel limit) are added only then, so the configs,
 * hence the corpus ids, of every other run stay what they were.
 */
async function corpusConfig(m: InfillMethod, params: Params, variants: number, opts: GenerateOptions, source: Resolved['source']): Promise<Record<string, unknown>> {
  const config: Record<string, unknown> = {
    dataset: source.metadata.dataset, method: m.name, algorithm: m.algorithm ?? 1, kind: m.kind, params, variants, size: opts.size, seed: opts.seed,
    splits: opts.splits, format: opts.format, shard_size: opts.shardSize, source_manifest: basename(source.dir),
  };
  if (m.fileHashes) config.files_sha256 = await m.fileHashes(params);
  const origin = infillOrigin(m.name);
  if (origin) config.plugin = await pluginRecord(origin);
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
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

/** runGenerate's work once every corpus folder of the run is locked. */
async function generateLocked(opts: GenerateOptions, r: Resolved): Promise<GenerateSummary> {
  const { methods, parsed, source, rows, base, log, t0 } = r;
  const sourceDigest = source.digest;
  const shards = planShards(rows.length, opts.shardSize);
  const size = opts.size ? { width: opts.size, height: opts.size } : null;
  const ctx: RunContext = { root: resolve(source.root), seed: opts.seed, size, format: opts.format, methods: {}, maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS };

  const states: MethodState[] = [];
  for (const m of methods) {
    const params = parsed.get(m.name)!;
    const variants = m.deterministic ? 1 : opts.variants;
    const dir = join(base, m.name);
    const config = await corpusConfig(m, params, variants, opts, source);
    const configHash = sha256Hex(stableStringify({ config, source_digest: sourceDigest, tool_version: TOOL_VERSION }));
    const plan: MethodPlan = { name: m.name, params, variants, dir };
    ctx.methods[m.name] = plan;
    const metadata: ManifestMetadata = {
      format: MANIFEST_FORMAT, format_version: MANIFEST_FORMAT_VERSION, kind: 'corpus', dataset: source.metadata.dataset,
      class_names: source.metadata.class_names, tool_version: TOOL_VERSION, seed: opts.seed, config, source_digest: sourceDigest,
    };
    if (opts.force) await clearCorpusDir(dir, [CORPUS_LOCK]);
    await checkSameConfig(dir, configHash, m.name);
    const markers: (DoneMarker | null)[] = [];
    let resumed = 0;
    for (const s of shards) {
      const st = await shardState(dir, s.index, configHash, { rehash: opts.verify });
      if (st.state === 'other-config') {
        throw new UserError(`${dir} holds shards generated with a different configuration`, { fix: 'pass --force to replace that corpus, or use another --corpora-root' });
      }
      if (st.state === 'stale') log(`${m.name}: shard ${s.index} will be regenerated (${st.why})`);
      markers.push(st.state === 'done' ? st.marker : null);
      if (st.state === 'done') resumed++;
    }
    if (resumed < shards.length) {
      // safe only because this run holds the corpus lock: no live run owns these temp files
      const n = await removeTempFiles(dir);
      if (n) log(`${m.name}: removed ${n} temp file(s) left by an interrupted run`);
    }
    states.push({ m, plan, config, configHash, metadata, markers, resumed });
  }

  const donors = new DonorIndex(rows);
  const pendingShards = shards.filter((s) => states.some((st) => !st.markers[s.index]));
  const totalRows = pendingShards.reduce((a, s) => a + s.end - s.start, 0);
  const progress = opts.progress ?? createProgress();
  const needsRunner = states.some((st) => st.m.mode === 'sync' && st.markers.some((x) => !x));
  const runner = needsRunner ? await createRowRunner(opts.workers, ctx, pluginModules()) : null;
  let imagesWritten = 0;
  progress.start(totalRows, `generate ${source.metadata.dataset}`);
  // at most two shards in flight: enough to keep the workers busy across a shard boundary, memory stays flat
  const inFlight: Promise<void>[] = [];
  try {
    const rowLimit = pLimit(runner?.inflight ?? Math.max(1, opts.workers));
    // batched (model) infills run one call at a time, in shard order: a model session is not shared concurrently
    let batchTurn: Promise<void> = Promise.resolve();
    for (const s of pendingShards) {
      const todo = states.filter((st) => !st.markers[s.index]);
      const syncNames = todo.filter((st) => st.m.mode === 'sync').map((st) => st.m.name);
      const slice = rows.slice(s.start, s.end);
      const myTurn = batchTurn;
      let endTurn!: () => void;
      batchTurn = new Promise<void>((resolve) => { endTurn = resolve; });
      const job = (async () => {
        const perMethodRows = new Map<string, CorpusRow[]>(todo.map((st) => [st.m.name, []]));
        const perMethodFiles = new Map<string, WrittenFile[]>(todo.map((st) => [st.m.name, []]));
        try {
          if (syncNames.length) {
            const results: RowResult[] = await Promise.all(slice.map((row, k) => rowLimit(async () => {
              const r = await runner!.run(makeJob(s.start + k, row, syncNames, states, donors, opts.seed));
              progress.tick();
              return r;
            })));
            for (const r of results) {
              for (const name of syncNames) {
                perMethodRows.get(name)!.push(...r.rows[name]);
                perMethodFiles.get(name)!.push(...r.files[name]);
              }
            }
          }
          await myTurn;
          for (const st of todo) {
            if (st.m.mode !== 'batch') continue;
            const got = await processBatchShard(st.m, st.plan, slice.map((row, k) => ({ index: s.start + k, row })), ctx, opts.workers, () => { if (!syncNames.length) progress.tick(); });
            perMethodRows.set(st.m.name, got.rows);
            perMethodFiles.set(st.m.name, got.files);
          }
        } finally {
          // also when this shard failed: the next shard's batch call must not wait for a turn that never ends
          endTurn();
        }
        for (const st of todo) {
          const files = perMethodFiles.get(st.m.name)!;
          imagesWritten += files.length;
          st.markers[s.index] = await writeShard(st.plan.dir, s.index, st.metadata, perMethodRows.get(st.m.name)!, files, st.configHash);
          await opts.onShardDone?.(st.m.name, s.index);
        }
      })();
      job.catch(() => {}); // a failure surfaces when it is awaited below, never as an unhandled rejection
      inFlight.push(job);
      if (inFlight.length >= 2) await inFlight.shift();
    }
    await Promise.all(inFlight);
  } catch (e) {
    // the other shard in flight may still be writing: let it stop before the locks are released, so no file of
    // this run is written after another run may have started on the corpus
    await Promise.allSettled(inFlight);
    throw e;
  } finally {
    progress.stop();
    // cleanup failures (a worker that will not terminate, a model session that fails to close) must not replace
    // the error that stopped the run, and must not go unnoticed after a run that succeeded
    const cleanup = await Promise.allSettled([runner?.close(), ...methods.map((m) => (m.mode === 'batch' ? m.close?.() : undefined))]);
    const bad = cleanup.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    if (bad) log(`warning: cleanup after the run failed: ${(bad.reason as Error)?.message ?? String(bad.reason)}`);
  }

  const summaries: MethodSummary[] = [];
  const total: ShardCounts = { ok: 0, skipped: 0, error: 0 };
  for (const st of states) {
    const markers = st.markers as DoneMarker[];
    // marker counts were recomputed from (resumed) or written from (new) the shard's rows: never taken on trust
    const counts: ShardCounts = { ok: 0, skipped: 0, error: 0 };
    for (const mk of markers) for (const k of ['ok', 'skipped', 'error'] as const) counts[k] += mk.counts[k];
    for (const k of ['ok', 'skipped', 'error'] as const) total[k] += counts[k];
    const corpusId = corpusIdOf(TOOL_VERSION, st.config, sourceDigest, markers.map((mk) => mk.content_hash));
    await stampShards(st.plan.dir, markers.length, { ...st.metadata, corpus_id: corpusId });
    await writeJsonAtomic(join(st.plan.dir, 'corpus.json'), {
      corpus_id: corpusId, tool_version: TOOL_VERSION, dataset: source.metadata.dataset, method: st.m.method, name: st.m.name,
      kind: st.m.kind, config: st.config, config_hash: st.configHash, source_digest: sourceDigest, shards: markers.length,
      counts, files: counts.ok,
    });
    summaries.push({ name: st.m.name, dir: st.plan.dir, corpusId, counts, shards: markers.length, resumedShards: st.resumed });
  }
  const items = total.ok + total.skipped + total.error;
  const errorRate = items ? total.error / items : 0;
  let exitCode = 0;
  let exitReason: string | null = null;
  if (opts.strict && total.error > 0) { exitCode = 1; exitReason = `--strict: ${total.error} error row(s)`; }
  else if (errorRate > opts.maxErrorRate) { exitCode = 1; exitReason = `error rate ${(errorRate * 100).toFixed(2)}% exceeds --max-error-rate ${(opts.maxErrorRate * 100).toFixed(2)}%`; }
  return {
    methods: summaries, counts: total, rowsProcessed: totalRows, imagesWritten, seconds: (Date.now() - t0) / 1000,
    errorRate, exitCode, exitReason,
  };
}

function makeJob(index: number, row: SourceRow, names: string[], states: MethodState[], donors: DonorIndex, seed: number): RowJob {
  const job: RowJob = { index, row, methods: names, donors: {} };
  for (const st of states) {
    if (!names.includes(st.m.name) || !st.m.donors) continue;
    const n = st.m.donors.count(st.plan.params);
    if (n <= 0) continue;
    const perVariant: SourceRow[][] = [];
    for (let v = 0; v < st.plan.variants; v++) {
      perVariant.push(donors.candidates(row, n + st.m.donors.spares, st.m.donors.otherClass, seed, st.m.name, v));
    }
    job.donors[st.m.name] = perVariant;
  }
  return job;
}

async function checkSameConfig(dir: string, configHash: string, name: string): Promise<void> {
  let old: { config_hash?: string };
  try {
    old = JSON.parse(await readFile(join(dir, 'corpus.json'), 'utf8'));
  } catch {
    await mkdir(dir, { recursive: true });
    return;
  }
  if (old.config_hash !== configHash) {
    throw new UserError(`${dir} already holds a ${name} corpus generated with a different configuration`, {
      file: join(dir, 'corpus.json'),
      fix: 'pass --force to replace it, or use another --corpora-root',
    });
  }
}

function validateOptions(o: GenerateOptions): void {
  const bad = (what: string, fix: string) => { throw new UserError(what, { fix }); };
  if (!Number.isInteger(o.variants) || o.variants < 1 || o.variants > 1000) bad(`--variants must be an integer in [1, 1000], got ${o.variants}`, 'e.g. --variants 1');
  if (o.size !== null && (!Number.isInteger(o.size) || o.size < 8 || o.size > 8192)) bad(`--size must be an integer in [8, 8192] (or 0 to keep the stored size), got ${o.size}`, 'e.g. --size 224');
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 2 ** 31 - 1) bad(`--seed must be an integer in [0, 2^31 − 1], got ${o.seed}`, 'e.g. --seed 0');
  if (!Number.isInteger(o.workers) || o.workers < 1 || o.workers > 256) bad(`--workers must be an integer ≥ 1, got ${o.workers}`, 'e.g. --workers 2');
  if (!Number.isInteger(o.shardSize) || o.shardSize < 1) bad(`--shard-size must be a positive integer, got ${o.shardSize}`, 'e.g. --shard-size 256');
  if (!(o.maxErrorRate >= 0 && o.maxErrorRate <= 1)) bad(`--max-error-rate must be in [0, 1], got ${o.maxErrorRate}`, 'e.g. --max-error-rate 0.05');
  if (o.format !== 'png' && o.format !== 'jpg') bad(`--format must be png or jpg, got ${o.format}`, 'use --format png');
  if (!o.splits.length) bad('--splits is empty', 'e.g. --splits train');
  if (o.maxPixels !== undefined && (!Number.isInteger(o.maxPixels) || o.maxPixels < 1)) bad(`--max-pixels must be a positive integer, got ${o.maxPixels}`, `e.g. --max-pixels ${DEFAULT_MAX_PIXELS}`);
}
