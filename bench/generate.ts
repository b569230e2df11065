/**
 * Generation throughput: images/s per method on 224 px images, as a ratio to bare sharp decode + PNG encode + atomic
 * write of the same images to the same paths at the same concurrency, measured in the same run; and the 1 → 2 worker
 * speed-up. The first method also runs with a cold mask cache (pipeline/generate/mask-cache.ts); every method row
 * after that reads a warm cache, as every generate job after a dataset's first does, and is measured again right after
 * without the cache.
 * `make bench-generate` runs it with generate's node options (common/heap.ts GENERATE_NODE_OPTIONS), as `make generate`
 * runs; the bare-sharp rows share the process, so they run with them too.
 * Builds its own synthetic dataset (JPEG photos-like images + PNG masks) in a temp folder (TMPDIR): needs nothing
 * else. On ext4 each file it creates scans past the inodes its own earlier runs deleted, which moves single runs by
 * ±15%; TMPDIR=/dev/shm (tmpfs) gives steadier pairs (docs/benchmarks.md).
 *
 *   NODE_OPTIONS=--max-semi-space-size=1 npx tsx bench/generate.ts [--images 300] [--size 224] [--methods cf-grey,...] [--workers 1,2] [--repeat 1]
 *
 * --repeat N measures everything N times and keeps the best (lowest CPU time): on a shared machine other jobs only
 * ever add time, so the best of a few runs is the closest to the code's own cost. Each method run is paired with a
 * bare-sharp run just before it, and the method's ratios are taken against those: the machine's pace drifts.
 */
import sharp, { type OutputInfo } from 'sharp';
import fg from 'fast-glob';
import pLimit from 'p-limit';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ManifestWriter, TOOL_VERSION, rngFor, writeFileAtomic, type SourceRow } from '../manifests/index.ts';
import { loadSegMask } from '../manifests/masks.ts';
import { DEFAULT_METHODS } from '../pipeline/infills/index.ts';
import { createProgress, GENERATE_DEFAULTS, PER_WORKER, runGenerate } from '../pipeline/generate/index.ts';
import { MASK_CACHE_ENV, MASK_CACHE_FOLDER } from '../pipeline/generate/mask-cache.ts';
import { imageRelPath } from '../pipeline/generate/paths.ts';
import { boundHeapGrowth } from '../common/heap.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const N = Number(arg('images', '300'));
const SIZE = Number(arg('size', '224'));
const METHODS = arg('methods', DEFAULT_METHODS.join(',')).split(',');
const WORKERS = arg('workers', '1,2').split(',').map(Number);
const REPEAT = Math.max(1, Number(arg('repeat', '1')));

/** The best of REPEAT measurements (each taken by `once`). */
async function best(once: () => Promise<Measure>): Promise<Measure> {
  let b: Measure | null = null;
  for (let k = 0; k < REPEAT; k++) { const m = await once(); if (!b || m.cpuMs < b.cpuMs) b = m; }
  return b!;
}

/** A smooth gradient + texture background and an elliptical object: compresses like a photo, not like noise. */
function rowOf(i: number): SourceRow {
  return {
    id: `bench/${i}`, split: 'train', label: i % 2, class_name: i % 2 ? 'b' : 'a', path: `images/${i}.jpg`, mask_path: `masks/${i}.png`,
    mask_format: 'png-nonzero', boxes: null, group: null, place: null, location: null, variant: null, width: SIZE, height: SIZE,
    status: 'ok', error: null,
  };
}

async function makeDataset(dir: string): Promise<{ root: string; sourceDir: string }> {
  const root = join(dir, 'data');
  await mkdir(join(root, 'images'), { recursive: true });
  await mkdir(join(root, 'masks'), { recursive: true });
  const rows: SourceRow[] = [];
  for (let i = 0; i < N; i++) {
    const r = rngFor('bench-image', i);
    const label = i % 2;
    const img = Buffer.alloc(SIZE * SIZE * 3), mask = Buffer.alloc(SIZE * SIZE);
    const cx = SIZE * (0.25 + 0.5 * r.next()), cy = SIZE * (0.25 + 0.5 * r.next());
    const rx = SIZE * (0.12 + 0.15 * r.next()), ry = SIZE * (0.12 + 0.15 * r.next());
    const base = label ? [40, 90, 170] : [90, 150, 60];
    for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) {
      const p = y * SIZE + x;
      const inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
      mask[p] = inside ? 255 : 0;
      const tex = 20 * Math.sin(x / 7 + i) * Math.cos(y / 9) + 12 * (r.next() - 0.5);
      for (let c = 0; c < 3; c++) {
        const v = inside ? 200 - 60 * c + tex : base[c] + (x + y) / 8 + tex;
        img[p * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
    await writeFile(join(root, 'images', `${i}.jpg`), await sharp(img, { raw: { width: SIZE, height: SIZE, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
    await writeFile(join(root, 'masks', `${i}.png`), await sharp(mask, { raw: { width: SIZE, height: SIZE, channels: 1 } }).png().toBuffer());
    rows.push(rowOf(i));
  }
  const sourceDir = join(dir, 'corpora', 'bench', 'source');
  const w = new ManifestWriter(sourceDir, 'source', {
    format: 'cfgen-manifest', format_version: 1, kind: 'source', dataset: 'bench', class_names: ['a', 'b'], tool_version: TOOL_VERSION, seed: 0, config: { root },
  }, { prefix: 'source' });
  for (const r of rows) await w.write(r);
  await w.close();
  return { root, sourceDir };
}

/**
 * Bare sharp: read, decode to raw RGB, encode PNG (the pipeline's settings), write atomically to the file a corpus
 * would hold (pipeline/generate/paths.ts: 256 fan-out folders), or with `flat` all into one folder. With `withMask`,
 * also decode the image's mask the way the pipeline must (loadSegMask): the unavoidable input cost beyond bare sharp.
 *
 * Why the corpus's paths: making a folder cost about 0.9 ms of kernel CPU on the VM this was measured on, and 300
 * images land in about 210 of the 256 folders, so a method writing there paid about 1 ms per image that bare sharp
 * writing one folder did not. A real corpus makes each folder once (256 in all), so per image that cost is a
 * small-bench artefact; both sides now write the same files, and the flat row shows the difference.
 */
async function baseline(root: string, out: string, inflight: number, withMask = false, flat = false): Promise<Measure> {
  return timedWrites(out, inflight, N, async (i) => {
    const [{ data, info }] = await Promise.all([decodeSource(root, i), withMask ? loadSegMask(root, rowOf(i)) : null]);
    await encodeAndWrite(join(out, flat ? `${i}.png` : imageRelPath(rowOf(i).id, 0, 'png')), data, info.width, info.height);
  });
}

/**
 * The bare codec cost of one method's own output: for each image it wrote, read and decode its source (and, for a
 * method that draws a donor, one more source), encode the method's output pixels as PNG and write it atomically.
 * F outputs are mostly noise or shuffled pixels, which cost PNG more to encode than the photo bare sharp re-encodes,
 * so this floor, not bare sharp, is what the method's own overhead is measured against.
 */
async function codecFloor(root: string, out: string, inflight: number, outputs: Output[], donor: boolean): Promise<Measure> {
  return timedWrites(out, inflight, outputs.length, async (i) => {
    const o = outputs[i];
    await Promise.all([decodeSource(root, i), donor ? decodeSource(root, i + 1) : null]);
    await encodeAndWrite(join(out, o.rel), o.data, o.width, o.height);
  });
}

/** Bare sharp's decode of source image i (modulo N): read the file, decode to raw RGB. */
async function decodeSource(root: string, i: number): Promise<{ data: Buffer; info: OutputInfo }> {
  return sharp(await readFile(join(root, 'images', `${i % N}.jpg`))).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
}

/** Bare sharp's encode of raw RGB with the pipeline's PNG settings, written atomically to `file`. */
async function encodeAndWrite(file: string, data: Uint8Array, width: number, height: number): Promise<void> {
  await writeFileAtomic(file, await sharp(data, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer());
}

/** Empty `out`, then time `work(i)` for i < count with `inflight` at a time. */
async function timedWrites(out: string, inflight: number, count: number, work: (i: number) => Promise<void>): Promise<Measure> {
  await rm(out, { recursive: true, force: true });
  const limit = pLimit(inflight);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: count }, (_, i) => limit(() => work(i))));
  return measure(count, t0, c0);
}

/** One image a method wrote: its pixels and its path in the corpus. */
interface Output { data: Buffer; width: number; height: number; rel: string }

/** The pixels of every image a method wrote, and where (untimed: the input of codecFloor). */
async function outputsOf(corpusDir: string): Promise<Output[]> {
  const files = (await fg('images/**/*.png', { cwd: corpusDir })).sort();
  return Promise.all(files.map(async (rel) => {
    const { data, info } = await sharp(join(corpusDir, rel)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, rel };
  }));
}

/** images/s (wall) and CPU ms per image (all threads of this process: main, workers, libvips, libuv). */
interface Measure { rate: number; cpuMs: number }
function measure(images: number, t0: number, c0: NodeJS.CpuUsage): Measure {
  const c = process.cpuUsage(c0);
  return { rate: images / ((performance.now() - t0) / 1000), cpuMs: (c.user + c.system) / 1000 / images };
}

/** Where the dataset a child process measures lives (the parent builds it once). */
interface Paths { dir: string; root: string; sourceDir: string }
/** One table row, measured in a child process of its own (see main). */
type RowSpec = { kind: 'baseline' } | { kind: 'row'; methods: string[]; cache: 'warm' | 'cold'; againWithout: boolean };
/** What the bare rows' child reports, per worker count: bare sharp, the same plus the mask decode, into one folder. */
interface BareResult { bare: Record<number, Measure>; withMask: Record<number, Measure>; flat: Record<number, Measure> }
/**
 * What a method row's child reports: per worker count, the method's best run, its paired bare run, the no-cache run;
 * the floor.
 */
interface RowResult {
  r: Record<number, Measure>; near: Record<number, Measure>; off: Record<number, Measure>; floor: Measure | null;
  /** per worker count, each pair's bare CPU ÷ method CPU (the pair measured back to back) */
  pairs: Record<number, number[]>;
}

/** The median of xs (the mean of the middle two for an even count). */
function median(xs: number[]): number {
  const v = [...xs].sort((a, b) => a - b), h = v.length >> 1;
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

/** One timed run of `methods` with w workers, from empty corpus folders; `cache` says what the mask cache holds. */
async function timed(p: Paths, methods: string[], w: number, cache: 'warm' | 'cold' | 'off'): Promise<Measure> {
  for (const m of methods) await rm(join(p.sourceDir, '..', m), { recursive: true, force: true });
  if (cache === 'cold') await rm(join(p.sourceDir, '..', MASK_CACHE_FOLDER), { recursive: true, force: true });
  // worker threads copy process.env when they start, so this reaches them too
  if (cache === 'off') process.env[MASK_CACHE_ENV] = 'off'; else delete process.env[MASK_CACHE_ENV];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const s = await runGenerate({
    ...GENERATE_DEFAULTS, splits: ['train'], params: {}, size: null, sourceDir: p.sourceDir, methods, workers: w,
    shardSize: 256, progress: createProgress({ quiet: true }), log: () => {},
  });
  delete process.env[MASK_CACHE_ENV];
  return measure(s.imagesWritten, t0, c0);
}

/** Measure the bare rows (in a child process). */
async function measureBare(p: Paths): Promise<BareResult> {
  const res: BareResult = { bare: {}, withMask: {}, flat: {} };
  // the pipeline keeps PER_WORKER rows in flight per worker, so the baseline runs PER_WORKER × workers at a time
  for (const w of WORKERS) {
    await baseline(p.root, join(p.dir, 'warm'), PER_WORKER * w);
    res.bare[w] = await best(() => baseline(p.root, join(p.dir, 'base'), PER_WORKER * w));
    res.withMask[w] = await best(() => baseline(p.root, join(p.dir, 'base'), PER_WORKER * w, true));
    res.flat[w] = await best(() => baseline(p.root, join(p.dir, 'base'), PER_WORKER * w, false, true));
  }
  return res;
}

/** Measure one method row (in a child process): the method's runs, each paired with a bare run; the floor. */
async function measureRow(p: Paths, spec: Extract<RowSpec, { kind: 'row' }>): Promise<RowResult> {
  const res: RowResult = { r: {}, near: {}, off: {}, floor: null, pairs: {} };
  for (const w of WORKERS) {
    // each method run is paired with a bare-sharp run right before it, and the row's ratios are taken against
    // that: on a shared VM the machine's pace drifts by ±20% within minutes, more than the differences measured
    let bm: Measure | null = null, bo: Measure | null = null;
    res.pairs[w] = [];
    for (let k = 0; k < REPEAT; k++) {
      const b = await baseline(p.root, join(p.dir, 'base'), PER_WORKER * w);
      if (!bm || b.cpuMs < bm.cpuMs) bm = b;
      const m = await timed(p, spec.methods, w, spec.cache);
      if (!bo || m.cpuMs < bo.cpuMs) bo = m;
      res.pairs[w].push(b.cpuMs / m.cpuMs);
    }
    res.near[w] = bm!;
    res.r[w] = bo!;
    // right after, without the mask cache: rows measured far apart differ by more than the cache saves
    if (spec.againWithout) res.off[w] = await best(() => timed(p, spec.methods, w, 'off'));
  }
  if (spec.methods.length === 1 && spec.cache === 'warm') {
    const outputs = await outputsOf(join(p.sourceDir, '..', spec.methods[0]));
    res.floor = await best(() => codecFloor(p.root, join(p.dir, 'floor'), PER_WORKER * WORKERS[0], outputs, spec.methods[0] === 'f-mixed-rand'));
  }
  return res;
}

/**
 * Run one row in a fresh node process, as users run one method per `cfgen generate` job, so no row runs on the heap,
 * pools and compiled code an earlier row left. The child gets this process's arguments and environment (NODE_OPTIONS
 * included).
 */
function inChild<T extends BareResult | RowResult>(p: Paths, spec: RowSpec): T {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), '--child', JSON.stringify({ p, spec })], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new Error(`bench child for ${JSON.stringify(spec)} exited with ${r.status ?? r.signal}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

async function main(): Promise<void> {
  boundHeapGrowth(); // as `cfgen generate` runs
  const child = arg('child', '');
  if (child) {
    const { p, spec } = JSON.parse(child) as { p: Paths; spec: RowSpec };
    process.stdout.write(`${JSON.stringify(spec.kind === 'baseline' ? await measureBare(p) : await measureRow(p, spec))}\n`);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'bench-gen-'));
  const loadBefore = loadavg()[0];
  process.stderr.write(`building ${N} synthetic ${SIZE}px images in ${dir} ...\n`);
  const paths: Paths = { dir, ...(await makeDataset(dir)) };
  const { bare: base, withMask, flat } = inChild<BareResult>(paths, { kind: 'baseline' });
  const fmt = (m: Measure, ref: Measure) => [m.rate.toFixed(1), (m.rate / ref.rate).toFixed(2), m.cpuMs.toFixed(2), (ref.cpuMs / m.cpuMs).toFixed(2)];
  const speedUp = (r: Record<number, Measure>) => (WORKERS.length > 1 ? (r[WORKERS[1]].rate / r[WORKERS[0]].rate).toFixed(2) : '-');
  const lines: string[][] = [];
  const row = async (label: string, methods: string[], cache: 'warm' | 'cold', againWithout = false): Promise<void> => {
    process.stderr.write(`measuring ${label} ...\n`);
    const { r, near, off, floor, pairs } = inChild<RowResult>(paths, { kind: 'row', methods, cache, againWithout });
    const w0 = WORKERS[0];
    const spread = (xs: number[]) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
    lines.push([label, ...WORKERS.flatMap((w) => fmt(r[w], near[w])), WORKERS.map((w) => spread(pairs[w])).join('  '), speedUp(r),
      WORKERS.map((w) => near[w].cpuMs.toFixed(2)).join('  '), floor ? `${floor.cpuMs.toFixed(2)} (${(floor.cpuMs / r[w0].cpuMs).toFixed(2)})` : '',
      againWithout ? WORKERS.map((w) => `${off[w].cpuMs.toFixed(2)} (${(near[w].cpuMs / off[w].cpuMs).toFixed(2)})`).join('  ') : '']);
  };
  // users run one method per job: the first job decodes every mask (a cold cache), later jobs read them back
  await row(`${METHODS[0]}, cold mask cache`, [METHODS[0]], 'cold');
  for (const m of METHODS) await row(m, [m], 'warm', true);
  // every method in one run: each source row is decoded (image + mask) once for all of them
  await row(`all ${METHODS.length} in one run`, METHODS, 'warm', true);
  const head = ['method', ...WORKERS.flatMap((w) => [`img/s w=${w}`, `ratio`, `cpu ms/img`, `cpu ratio`]), `pairwise cpu ratio: median (range), w=${WORKERS.join(', w=')}`, WORKERS.length > 1 ? `speed-up ${WORKERS[0]}→${WORKERS[1]}` : '',
    `paired bare cpu ms/img, w=${WORKERS.join(', w=')}`, `own-output codec floor cpu ms (÷ method), w=${WORKERS[0]}`, `no mask cache: cpu ms/img (cpu ratio), w=${WORKERS.join(', w=')}`];
  lines.unshift(head, ['sharp decode+encode+write', ...WORKERS.flatMap((w) => fmt(base[w], base[w])), '', speedUp(base), '', '', ''],
    ['  same + mask decode', ...WORKERS.flatMap((w) => fmt(withMask[w], base[w])), '', speedUp(withMask), '', '', ''],
    ['  same, one flat folder', ...WORKERS.flatMap((w) => fmt(flat[w], base[w])), '', speedUp(flat), '', '', '']);
  const widths = head.map((_, c) => Math.max(...lines.map((l) => l[c].length)));
  process.stdout.write(`generate bench: ${N} images, ${SIZE}px JPEG in, PNG out, ${cpus().length} cores, node ${process.version}, ${PER_WORKER} rows in flight per worker, best of ${REPEAT}, NODE_OPTIONS=${JSON.stringify(process.env.NODE_OPTIONS ?? '')}, load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end\n`);
  for (const l of lines) process.stdout.write(`${l.map((v, c) => v.padEnd(widths[c])).join('  ')}\n`);
  process.stdout.write('ratio = images/s ÷ bare sharp images/s (same images, same rows in flight); cpu ratio = bare sharp CPU ms ÷ method CPU ms per image; a method row\'s ratios are against the bare sharp run paired with it (measured right before each of its runs, best of the same number). Pairwise cpu ratio: each bare run ÷ the method run right after it, median and range over the pairs (less sensitive to a slow minute than the ratio of the best runs). Target ≥ 0.8 for every method alone (1 worker).\n');
  process.stdout.write('Bare sharp and the floors write each image to the path a corpus gives it (256 fan-out folders), as the methods do; "one flat folder" is bare sharp writing them all into one folder instead (making a folder costs kernel CPU that a real corpus pays once per folder, a 300-image bench per image).\n');
  process.stdout.write('Own-output codec floor: decode each source (and a donor for f-mixed-rand), encode the method\'s own output pixels, write: the cost no implementation of that method avoids; in brackets, floor ÷ method CPU.\n');
  process.stdout.write('Each row is measured in a fresh node process (as each generate job is one); the bare rows in one of their own.\n');
  process.stdout.write('Method rows read the masks from a warm mask cache (<corpora>/<dataset>/.mask-cache, filled by the cold run above), as every job after the first does; the last column is the same run right after with CFGEN_MASK_CACHE=off.\n');
  await rm(dir, { recursive: true, force: true });
}

await main();
