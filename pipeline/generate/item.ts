import { join } from 'node:path';
import { rngFor } from '../../manifests/rng.ts';
import { sha256Hex, writeFileAtomic } from '../../manifests/io.ts';
import { stableStringify } from '../../manifests/io.ts';
import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { CorpusRow, SourceRow } from '../../manifests/schema.ts';
import { getInfill, isBuiltinInfill, type Donor, type InfillMethod, type InfillResult, type Params } from '../infills/index.ts';
import { encodeImage, type ImageFormat } from '../decode.ts';
import { copyRegionPixels, invertMask, maskArea } from '../masks-ops.ts';
import { boundingBoxOfMask } from '../../manifests/masks.ts';
import { prepareRow, type Prepared } from './prepare.ts';
import { pooledCopy, release } from '../pixel-pool.ts';
import { maskCacheFor } from './mask-cache.ts';
import { imageRelPath, relativeToRoot } from './paths.ts';

/** What one method of a run needs to know (shared by the main thread and the worker threads). */
export interface MethodPlan {
  name: string;
  params: Params;
  /** variants written per source row (1 for deterministic methods) */
  variants: number;
  /** the corpus folder of this method (absolute) */
  dir: string;
}

/** Everything a row needs besides the row itself; the same object (cloned) in every worker thread. */
export interface RunContext {
  root: string;
  seed: number;
  size: { width: number; height: number } | null;
  format: ImageFormat;
  methods: Record<string, MethodPlan>;
  /** images (and donors) with more pixels are error rows, refused before decoding (--max-pixels) */
  maxPixels: number;
}

/** One source row's work for the sync methods, with its donors already drawn (so any thread gives the same bytes). */
export interface RowJob {
  index: number;
  row: SourceRow;
  /** sync methods to run on this row */
  methods: string[];
  /** per method, per variant: donor candidates in seeded order (only for methods that use donors) */
  donors: Record<string, SourceRow[][]>;
}

/** An image written for a corpus: its path relative to the corpus folder and its size (checked on resume). */
export interface WrittenFile {
  path: string;
  size: number;
}

/** What a row job produced, per method: its corpus rows and the files behind them. */
export interface RowResult {
  index: number;
  rows: Record<string, CorpusRow[]>;
  files: Record<string, WrittenFile[]>;
}

/** The manifest fields every row of (source row, method, variant) has, whatever its status. */
export function baseCorpusRow(row: SourceRow, m: InfillMethod, plan: MethodPlan, variant: number, seed: number, ctx: RunContext): CorpusRow {
  return {
    id: `${row.id}/${m.name}/${variant}`,
    source_id: row.id,
    source_path: row.path,
    image_path: null,
    split: row.split,
    label: row.label,
    class_name: row.class_name,
    non_y: m.kind === 'cf',
    kind: m.kind,
    method: m.method,
    params: stableStringify(plan.params),
    variant,
    seed,
    mask_kind: m.kind === 'cf' ? 'box' : m.maskKind,
    sha256: null,
    width: ctx.size?.width ?? row.width,
    height: ctx.size?.height ?? row.height,
    status: 'error',
    error: null,
    // optional columns are left out when null (schema.ts ColumnSpec.optional); the box is set once the image is read
    ...(row.mask_path ? { mask_path: row.mask_path, mask_format: row.mask_format ?? undefined } : {}),
  };
}

/** The `box` column: the bounding box [x, y, w, h] of the hole, in the prepared (output-size) image's pixels. */
export function boxColumn(p: Extract<Prepared, { status: 'ok' }>): number[] | undefined {
  const b = boundingBoxOfMask(p.box);
  return b ? [b.x, b.y, b.w, b.h] : undefined;
}

/** x·(1−r) + out·r: whatever an infill returns, only the region can differ from the input. */
export function compositeRegion(img: RGBImage, region: Mask, filled: RGBImage): RGBImage {
  if (filled.width !== img.width || filled.height !== img.height) {
    throw new Error(`infill returned a ${filled.width}x${filled.height} image for a ${img.width}x${img.height} input`);
  }
  const out = pooledCopy(img.data);
  copyRegionPixels(out, filled.data, region);
  return { width: img.width, height: img.height, data: out };
}

const backgrounds = new WeakMap<Mask, Mask>();
const areas = new WeakMap<Mask, number>();
const areaOf = (m: Mask): number => { let a = areas.get(m); if (a === undefined) areas.set(m, (a = maskArea(m))); return a; };

/** The region a method fills, or why there is none (F on a mask that covers everything). */
export function regionFor(m: InfillMethod, p: Extract<Prepared, { status: 'ok' }>): { region: Mask } | { skipped: string } {
  let region = p.box;
  if (m.kind === 'f') {
    // every F method of a row fills the same background: invert the object once
    region = backgrounds.get(p.object) ?? invertMask(p.object);
    backgrounds.set(p.object, region);
  }
  // a CF hole is never empty (prepareRow skips empty masks); only F can run out of region
  if (m.kind === 'f' && areaOf(region) === 0) {
    return { skipped: m.kind === 'f' ? 'mask covers the whole image: no background, so no F image (DESIGN §1)' : 'empty box hole' };
  }
  return { region };
}

/**
 * Variant `v`'s corpus row of `src` under `m`, filled in as every path (one row at a time, or batched) fills it: the
 * prepare error, the box column, the F mask kind, and a skip when the method has no region. `ready` is null when
 * the row is already final; otherwise it holds the decoded row and the region to fill.
 */
export function startVariantRow(
  src: SourceRow, m: InfillMethod, plan: MethodPlan, v: number, ctx: RunContext, p: Prepared, box: number[] | undefined,
): { row: CorpusRow; ready: { prep: Extract<Prepared, { status: 'ok' }>; region: Mask } | null } {
  const row = baseCorpusRow(src, m, plan, v, ctx.seed, ctx);
  if (p.status !== 'ok') { row.status = p.status; row.error = p.reason; return { row, ready: null }; }
  row.box = box;
  if (m.kind === 'f') row.mask_kind = p.objectKind;
  const reg = regionFor(m, p);
  if ('skipped' in reg) { row.status = 'skipped'; row.error = reg.skipped; return { row, ready: null }; }
  return { row, ready: { prep: p, region: reg.region } };
}

/** Encode, hash and atomically write one generated image; fills the row's ok fields. */
export async function writeOutput(row: CorpusRow, img: RGBImage, plan: MethodPlan, ctx: RunContext): Promise<WrittenFile> {
  const bytes = await encodeImage(img, ctx.format);
  const rel = imageRelPath(row.source_id, row.variant, ctx.format);
  await writeFileAtomic(join(plan.dir, rel), bytes);
  row.image_path = rel;
  row.sha256 = sha256Hex(bytes);
  row.width = img.width;
  row.height = img.height;
  row.status = 'ok';
  row.error = null;
  return { path: rel, size: bytes.length };
}

async function loadDonors(m: InfillMethod, plan: MethodPlan, candidates: SourceRow[], target: RGBImage, ctx: RunContext): Promise<{ donors: Donor[]; tried: string[] }> {
  const want = m.donors ? m.donors.count(plan.params) : 0;
  const donors: Donor[] = [];
  const tried: string[] = [];
  for (const c of candidates) {
    if (donors.length >= want) break;
    // donors are resized to the image's size (a donor already that size is decoded as is)
    const same = c.width === target.width && c.height === target.height && !ctx.size;
    const p = await prepareRow(c, { root: ctx.root, size: same ? null : { width: target.width, height: target.height }, maxPixels: ctx.maxPixels, maskCache: maskCacheFor(ctx) });
    if (p.status !== 'ok') { tried.push(`${c.id}: ${p.reason}`); continue; }
    const d: Donor = { sourceId: c.id, label: c.label, image: p.image, box: p.box };
    const why = m.donors?.accept?.(d, plan.params);
    if (why) { release(p.object.data, p.box.data); tried.push(`${c.id}: ${why}`); continue; }
    // a donor's object mask is not used (a box-only row's box is its object mask: that one stays)
    if (p.object.data !== p.box.data) release(p.object.data);
    donors.push(d);
  }
  return { donors, tried };
}

/** Run every (sync) method of a job on its source row: decode once, fill, write. Output-write failures throw. */
export async function processRow(job: RowJob, ctx: RunContext): Promise<RowResult> {
  const prepared = await prepareRow(job.row, { root: ctx.root, size: ctx.size, maxPixels: ctx.maxPixels, maskCache: maskCacheFor(ctx) });
  const result: RowResult = { index: job.index, rows: {}, files: {} };
  const box = prepared.status === 'ok' ? boxColumn(prepared) : undefined;
  // pooled buffers this row may hand back once it is written (pixel-pool.ts): its masks and the F background
  const held = new Set<Uint8Array>();
  if (prepared.status === 'ok') { held.add(prepared.object.data); held.add(prepared.box.data); }
  try {
    await runMethods(job, ctx, prepared, box, result, held);
  } finally {
    // also after a failed write: the buffers are no longer read either way
    release(...held);
  }
  return result;
}

async function runMethods(job: RowJob, ctx: RunContext, prepared: Prepared, box: number[] | undefined, result: RowResult, held: Set<Uint8Array>): Promise<void> {
  for (const name of job.methods) {
    const m = getInfill(name);
    const plan = ctx.methods[name];
    if (!m || m.mode !== 'sync' || !plan) throw new Error(`worker: no sync infill "${name}" registered`);
    const rows: CorpusRow[] = (result.rows[name] = []);
    const files: WrittenFile[] = (result.files[name] = []);
    for (let v = 0; v < plan.variants; v++) {
      const { row, ready } = startVariantRow(job.row, m, plan, v, ctx, prepared, box);
      rows.push(row);
      if (!ready) continue;
      const { prep, region } = ready;
      held.add(region.data);
      let donors: Donor[] | undefined;
      if (m.donors && m.donors.count(plan.params) > 0) {
        const candidates = job.donors[name]?.[v] ?? [];
        const got = await loadDonors(m, plan, candidates, prep.image, ctx);
        if (!got.donors.length) {
          row.status = 'skipped';
          row.error = candidates.length === 0
            ? `${m.name}: no ${m.donors.otherClass ? 'image of another class' : 'other image'} in split "${job.row.split}" to draw from`
            : `${m.name}: no usable donor (${got.tried.join('; ')})`;
          continue;
        }
        donors = got.donors;
      }
      let res: InfillResult;
      try {
        res = m.apply(prep.image, region, rngFor(ctx.seed, job.row.id, m.name, v), plan.params, {
          object: prep.object, box: prep.box, donors, label: job.row.label, sourceId: job.row.id,
        });
      } catch (e) {
        row.status = 'error';
        row.error = relativeToRoot(`${m.name} failed: ${(e as Error).message}`, ctx.root);
        continue;
      } finally {
        // the infill has returned: nothing reads the donors' masks any more
        for (const d of donors ?? []) release(d.box.data);
      }
      if (res.status !== 'ok') { row.status = 'skipped'; row.error = res.reason; continue; }
      const out = isBuiltinInfill(m.name) ? res.image : compositeRegion(prep.image, region, res.image);
      try {
        files.push(await writeOutput(row, out, plan, ctx));
      } finally {
        // encoded and written (or failed): the output's pixels are not read again; never the shared source pixels
        if (out.data !== prep.image.data) release(out.data);
      }
    }
  }
}
