import { join } from 'node:path';
import { sha256Hex, writeFileAtomic } from '../../manifests/io.ts';
import type { Mask, RGBImage } from '../../manifests/pixels.ts';
import type { EvalRow, SourceRow } from '../../manifests/schema.ts';
import { encodeImage, type ImageFormat } from '../decode.ts';
import { prepareRow } from '../generate/prepare.ts';
import { relativeToRoot } from '../generate/paths.ts';
import type { WrittenFile } from '../generate/item.ts';
import type { SpuriousAttribute, StressPairing } from './pairing.ts';
import { isDonorVariant, ownVariant, swappedVariant, type StressVariant, type VariantResult } from './variants.ts';

/** What every row of a stress-test run shares. */
export interface StressContext {
  /** dataset root (source paths are relative to it) */
  root: string;
  /** the corpus folder (absolute) */
  dir: string;
  seed: number;
  size: { width: number; height: number } | null;
  format: ImageFormat;
  variants: readonly StressVariant[];
  attribute: SpuriousAttribute | null;
  pairing: StressPairing;
  /** donor candidates tried per donor variant before the row is skipped */
  candidates: number;
}

/**
 * Where a variant image goes: `images/<variant>/<hh>/<sanitised id>_<8 hex>.<fmt>`, hh = first 2 hex of
 * sha256(source id). The hash keeps two ids that sanitise alike apart; the fan-out keeps folders small.
 */
export function stressImagePath(sourceId: string, variant: StressVariant, format: ImageFormat): string {
  const h = sha256Hex(sourceId);
  const safe = sourceId.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 80) || 'img';
  return `images/${variant}/${h.slice(0, 2)}/${safe}_${h.slice(0, 8)}.${format}`;
}

function baseRow(row: SourceRow, variant: StressVariant, ctx: StressContext): EvalRow {
  return {
    id: `${row.id}/${variant}`, source_id: row.id, source_path: row.path, image_path: null, split: row.split,
    label: row.label, class_name: row.class_name, variant, donor_id: null, donor_label: null,
    // the background shown: own for the variants that keep it; only_fg has none; donor variants set the donor's below
    place: variant === 'only_fg' ? null : row.place ?? null, location: variant === 'only_fg' ? null : row.location ?? null,
    seed: ctx.seed, mask_kind: 'seg', sha256: null, width: ctx.size?.width ?? row.width, height: ctx.size?.height ?? row.height,
    status: 'error', error: null,
  };
}

/** The first candidate whose image decodes and whose background can be tiled gives the background. */
async function fromDonors(img: RGBImage, object: Mask, candidates: SourceRow[], ctx: StressContext): Promise<{ res: VariantResult; donor: SourceRow | null }> {
  const tried: string[] = [];
  for (const c of candidates) {
    const same = !ctx.size && c.width === img.width && c.height === img.height;
    const p = await prepareRow(c, { root: ctx.root, size: same ? null : { width: img.width, height: img.height } });
    if (p.status !== 'ok') { tried.push(`${c.id}: ${p.reason}`); continue; }
    const res = swappedVariant(img, object, p.image, p.box);
    if (res.status === 'ok') return { res, donor: c };
    tried.push(`${c.id}: ${res.reason}`);
    // a recipient without background fails for every donor alike
    if (/no background to swap/.test(res.reason)) return { res, donor: null };
  }
  return { res: { status: 'skipped', reason: `no usable donor (${tried.join('; ')})` }, donor: null };
}

/** Every variant of one source row: decode once, build, encode, write. Disk errors throw (the run stops; rerun resumes). */
export async function processStressRow(row: SourceRow, ctx: StressContext): Promise<{ rows: EvalRow[]; files: WrittenFile[] }> {
  const prepared = await prepareRow(row, { root: ctx.root, size: ctx.size });
  const rows: EvalRow[] = [];
  const files: WrittenFile[] = [];
  for (const v of ctx.variants) {
    const out = baseRow(row, v, ctx);
    rows.push(out);
    if (prepared.status !== 'ok') { out.status = prepared.status; out.error = prepared.reason; continue; }
    out.mask_kind = prepared.objectKind;
    let res: VariantResult;
    try {
      if (isDonorVariant(v)) {
        const { pools, none } = ctx.pairing.pools(row, v);
        const candidates = pools.some((p) => p.length) ? ctx.pairing.candidates(row, v, ctx.seed, ctx.candidates) : [];
        if (!candidates.length) { out.status = 'skipped'; out.error = `${v}: ${none}`; continue; }
        const got = await fromDonors(prepared.image, prepared.object, candidates, ctx);
        res = got.res;
        if (got.donor) {
          out.donor_id = got.donor.id;
          out.donor_label = got.donor.label;
          out.place = got.donor.place ?? null;
          out.location = got.donor.location ?? null;
        }
      } else {
        res = ownVariant(v, prepared.image, prepared.object, prepared.box);
      }
    } catch (e) {
      out.error = relativeToRoot(`${v} failed: ${(e as Error).message}`, ctx.root);
      continue;
    }
    if (res.status !== 'ok') { out.status = 'skipped'; out.error = `${v}: ${res.reason}`; continue; }
    const bytes = await encodeImage(res.image, ctx.format);
    const rel = stressImagePath(row.id, v, ctx.format);
    await writeFileAtomic(join(ctx.dir, rel), bytes);
    Object.assign(out, { image_path: rel, sha256: sha256Hex(bytes), width: res.image.width, height: res.image.height, status: 'ok', error: null });
    files.push({ path: rel, size: bytes.length });
  }
  // attribute columns only mean something for the dataset's attribute; keep the other null so rows stay comparable
  if (ctx.attribute !== 'place') for (const r of rows) r.place = null;
  if (ctx.attribute !== 'location') for (const r of rows) r.location = null;
  return { rows, files };
}

