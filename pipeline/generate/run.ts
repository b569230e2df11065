import { join, resolve, dirname } from 'node:path';
import {
  UserError, manifestDigest, readSourceManifest, type ManifestMetadata, type SourceRow,
} from '../../manifests/index.ts';
import { DEFAULT_METHODS, getInfill, listInfills, type InfillMethod, type Params } from '../infills/index.ts';
import { DEFAULT_MAX_PIXELS } from '../decode.ts';
import { LockHeldError } from '../../common/lock.ts';
import { corruptFileError, environmentError } from '../../common/env-errors.ts';
import { datasetRootOf } from '../../common/paths.ts';
import { maskCacheFor, sweepMaskCacheTemps } from './mask-cache.ts';
import { claimTiming, claimsIn, type ClaimTiming } from './claims.ts';
import { DonorIndex } from './donors.ts';
import { finalizeLocked } from './finalize.ts';
import { CORPUS_LOCK, lockCorpora, releaseAll } from './locks.ts';
import { addCounts, exitStatus, runContext, type GenerateOptions, type GenerateSummary, type MethodSummary, type Resolved } from './options.ts';
import { checkSameConfig, planMethod, readPlan, writePlan, type SourceInfo } from './plan.ts';
import { processShards, type MethodState, type ShardWork } from './process.ts';
import { createProgress } from './progress.ts';
import { generateSharded } from './sharded.ts';
import { shardAssignment } from './sharding.ts';
import { clearCorpusDir, planShards, removeTempFiles, shardState, type DoneMarker, type ShardCounts } from './shards.ts';

export { GENERATE_DEFAULTS, type GenerateOptions, type GenerateSummary, type MethodSummary } from './options.ts';

/**
 * `generate`: write CF/F corpora for a dataset, one folder per method:
 *   <corpora>/<dataset>/<method>/images/…            generated images (PNG by default)
 *   <corpora>/<dataset>/<method>/manifest/part-NNNNN.arrow
 *   <corpora>/<dataset>/<method>/state/part-NNNNN.done, plan.json (and, while sharded workers run, part-NNNNN.claim)
 *   <corpora>/<dataset>/<method>/corpus.json          corpus id, config, counts
 * Deterministic (item rng = rngFor(seed, source_id, method, variant)), resumable (fixed shards with done markers),
 * the same bytes for any worker count, thread or process. An ordinary run locks each corpus folder (`.lock`) for the
 * whole run, so a second run on it fails fast instead of writing over the first; sharded workers (sharded.ts) claim
 * shard by shard instead and take the lock only to finalize.
 */

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
      maxPixels: opts.maxPixels, followSymlinks: opts.followSymlinks, maskForeground: opts.maskForeground,
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

/**
 * Generate (or resume) the corpora of a run. Sharded (`shardIndex/shardCount`, or a Slurm array / Kubernetes Indexed
 * Job in the environment): write this worker's shards under per-shard claims, and finalize when they are the last
 * (sharded.ts). Otherwise: lock every corpus folder, write every pending shard, finalize.
 */
export async function runGenerate(opts: GenerateOptions): Promise<GenerateSummary> {
  const t0 = Date.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  validateOptions(opts);
  const assignment = shardAssignment({ shardIndex: opts.shardIndex, shardCount: opts.shardCount }, opts.env ?? process.env);
  if (assignment && opts.force) {
    throw new UserError(`--force cannot be given to a sharded worker (${assignment.from}): one worker would empty the folder others are writing`, {
      fix: 'replace the corpus first with one unsharded `generate … --force` (or remove its folder), then start the workers without --force',
    });
  }
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

  const loaded = await loadSource(opts, log);
  const rows = loaded.rows.filter((r) => opts.splits.includes(r.split));
  if (!rows.length) {
    const have = [...new Set(loaded.rows.map((r) => r.split))].join(', ') || 'none';
    throw new UserError(`no source rows in split(s) ${opts.splits.join(', ')}`, { file: loaded.dir, fix: `choose --splits among: ${have}` });
  }
  const seenIds = new Set<string>();
  for (const r of rows) {
    // ids name the output files and seed the rngs: a duplicate would overwrite another image
    if (seenIds.has(r.id)) throw new UserError(`source id "${r.id}" appears twice`, { file: loaded.dir, row: r.id, fix: 'rebuild the source manifest (make dataset); ids must be unique' });
    seenIds.add(r.id);
  }
  const source: SourceInfo = { dir: loaded.dir, root: resolve(loaded.root), metadata: loaded.metadata, digest: loaded.digest };
  const base = dirname(resolve(source.dir));
  const resolved: Resolved = { methods, parsed, source, rows, base, log, t0 };
  if (assignment) return generateSharded(opts, resolved, assignment);
  // every corpus folder stays locked until its corpus.json is written: nothing below runs while another run writes
  const locks = await lockCorpora(methods.map((m) => ({ name: m.name, dir: join(base, m.name) })), log);
  try {
    return await generateLocked(opts, resolved);
  } finally {
    // releaseAll never throws, so it cannot replace an error on its way out
    await releaseAll(locks);
  }
}

/** Refuse to touch a corpus whose shards live sharded workers are writing (their claims are in its state folder). */
async function refuseLiveClaims(dir: string, name: string, timing: ClaimTiming): Promise<void> {
  const live = (await claimsIn(dir, timing)).find((c) => c.live);
  if (live && live.holder !== 'unreadable') throw new LockHeldError(live.file, live.holder, `the ${name} corpus is being generated by sharded workers: a shard is claimed`);
}

/** runGenerate's work once every corpus folder of the run is locked. */
async function generateLocked(opts: GenerateOptions, r: Resolved): Promise<GenerateSummary> {
  const { methods, source, rows, log, t0 } = r;
  const shards = planShards(rows.length, opts.shardSize);
  const ctx = runContext(opts, source);
  const timing = opts.claimTiming ?? claimTiming();

  const states: MethodState[] = [];
  for (const m of methods) {
    const { dir, corpus, plan } = await planMethod(m, r, opts, shards.length, ctx);
    await refuseLiveClaims(dir, m.name, timing);
    if (opts.force) await clearCorpusDir(dir, [CORPUS_LOCK]);
    await checkSameConfig(dir, corpus.config_hash, m.name);
    const recorded = await readPlan(dir);
    if (recorded && recorded.config_hash !== corpus.config_hash) {
      throw new UserError(`${dir} holds an unfinished ${m.name} corpus generated with a different configuration`, { fix: 'pass --force to replace that corpus, or use another --corpora-root' });
    }
    const markers: (DoneMarker | null)[] = [];
    let resumed = 0;
    for (const s of shards) {
      const st = await shardState(dir, s.index, corpus.config_hash, { rehash: opts.verify });
      if (st.state === 'other-config') {
        throw new UserError(`${dir} holds shards generated with a different configuration`, { fix: 'pass --force to replace that corpus, or use another --corpora-root' });
      }
      if (st.state === 'stale') log(`${m.name}: shard ${s.index} will be regenerated (${st.why})`);
      markers.push(st.state === 'done' ? st.marker : null);
      if (st.state === 'done') resumed++;
    }
    if (resumed < shards.length) {
      // safe only because this run holds the corpus lock and no worker holds a claim: no live run owns these files
      const n = await removeTempFiles(dir);
      if (n) log(`${m.name}: removed ${n} temp file(s) left by an interrupted run`);
    }
    await writePlan(dir, corpus);
    states.push({ m, plan, corpus, markers, resumed });
  }

  const swept = await sweepMaskCacheTemps(maskCacheFor(ctx));
  if (swept) log(`mask cache: removed ${swept} temp file(s) left by an interrupted run`);
  const pending = shards.filter((s) => states.some((st) => !st.markers[s.index]));
  const totalRows = pending.reduce((a, s) => a + s.end - s.start, 0);
  const progress = opts.progress ?? createProgress();
  const work: ShardWork[] = pending.map((s) => ({ shard: s, states: states.filter((st) => !st.markers[s.index]) }));
  progress.start(totalRows, `generate ${source.metadata.dataset}`);
  let imagesWritten: number;
  try {
    imagesWritten = await processShards(iterate(work), {
      workers: opts.workers, seed: opts.seed, ctx, rows, donors: new DonorIndex(rows), methods, progress, log, onShardDone: opts.onShardDone,
      needsRunner: states.some((st) => st.m.mode === 'sync' && st.markers.some((x) => !x)),
    });
  } finally {
    progress.stop();
  }

  const summaries: MethodSummary[] = [];
  const total: ShardCounts = { ok: 0, skipped: 0, error: 0 };
  for (const st of states) {
    const res = await finalizeLocked(st.plan.dir, st.corpus, { timing, log, known: st.markers as DoneMarker[] });
    if (res.state !== 'done') {
      throw new UserError(`${st.m.name}: cannot finalize: ${res.state === 'busy' ? res.why : res.why.join('; ')}`, { file: st.plan.dir, fix: 'run the same command again' });
    }
    addCounts(total, res.counts);
    summaries.push({ name: st.m.name, dir: st.plan.dir, corpusId: res.corpusId, counts: res.counts, shards: res.shards, resumedShards: st.resumed });
  }
  return { methods: summaries, counts: total, rowsProcessed: totalRows, imagesWritten, seconds: (Date.now() - t0) / 1000, ...exitStatus(opts, total) };
}

/** A list of work items as the async iterable processShards takes. */
async function* iterate<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
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
