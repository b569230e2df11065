import { join } from 'node:path';
import { resolveInsideRoot } from '../../manifests/masks.ts';
import type { SourceRow } from '../../manifests/schema.ts';
import { baseRow, listingFingerprint, errorRow, mapLimit, probeImage, rowOrError, type AdapterOptions, type AdapterResult } from './common.ts';
import { JsonFields, readJsonFile } from './json.ts';

/**
 * Caltech Camera Traps, ECCV'18 split (Beery et al.), DESIGN §6:
 *   eccv_18_annotation_files/{train,cis_val,cis_test,trans_test}_annotations.json (COCO-like)
 *   eccv_18_all_images_sm/<file_name>   (downscaled copies; boxes are in the JSON's original resolution)
 */
export const CCT_SPLITS = ['train', 'cis_val', 'cis_test', 'trans_test'] as const;
export const CCT_ANNOTATION_DIR = 'eccv_18_annotation_files';
export const CCT_IMAGE_DIR = 'eccv_18_all_images_sm';
/** the "empty" category: no animal, dropped (DESIGN §6) */
export const CCT_EMPTY_CATEGORY = 30;

export function cctAnnotationFile(split: string): string {
  return `${CCT_ANNOTATION_DIR}/${split}_annotations.json`;
}

/** Box [x, y, w, h] rescaled from the annotation's resolution to the stored image's; null if not a usable box. */
export function rescaleBox(bbox: unknown, from: { width: number; height: number }, to: { width: number; height: number }): number[] | null {
  if (!Array.isArray(bbox) || bbox.length !== 4) return null;
  const [x, y, w, h] = bbox as unknown[];
  if (![x, y, w, h].every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
  if ((w as number) <= 0 || (h as number) <= 0) return null;
  const sx = to.width / from.width, sy = to.height / from.height;
  return [(x as number) * sx, (y as number) * sy, (w as number) * sx, (h as number) * sy];
}

interface ImageDraft {
  split: string;
  id: string;
  fileName: string;
  width: number;
  height: number;
  location: string;
  /** category ids of its annotations, with their boxes (original pixels, unchecked) */
  annotations: { category: number; bbox: unknown }[];
}

export function cctFingerprint(root: string): Promise<string> {
  return listingFingerprint(root, [`${CCT_IMAGE_DIR}/*`], CCT_SPLITS.map(cctAnnotationFile));
}

export async function readCct(root: string, opts: AdapterOptions = {}): Promise<AdapterResult> {
  // first, while nothing else is held: listing a large dataset is a memory peak of its own; and a file changed
  // during the ingest then makes the next run rebuild
  const fingerprint = await cctFingerprint(root);
  const categories = new Map<number, string>();
  const images: ImageDraft[] = [];
  const imageFileOf = new Map<string, string>();

  for (const split of CCT_SPLITS) {
    const file = join(root, cctAnnotationFile(split));
    const json = await readJsonFile(file, `put the ECCV'18 ${split}_annotations.json from the Caltech Camera Traps release there`);
    const f = new JsonFields(file, 'the file must be the COCO-like CCT annotation JSON: images[id,file_name,width,height,location], annotations[image_id,category_id,bbox?], categories[id,name]');
    const cats = f.array(json, 'categories', '');
    cats.forEach((c, i) => {
      const id = Number(f.id(c, 'id', `categories[${i}].`));
      const name = f.string(c, 'name', `categories[${i}].`);
      if (categories.has(id) && categories.get(id) !== name) f.fail(`categories[${i}].name`, `category ${id} is "${name}" here but "${categories.get(id)}" in another annotation file`);
      categories.set(id, name);
    });
    const byId = new Map<string, ImageDraft>();
    f.array(json, 'images', '').forEach((im, i) => {
      const p = `images[${i}].`;
      const draft: ImageDraft = {
        split,
        id: f.id(im, 'id', p),
        fileName: f.string(im, 'file_name', p),
        width: f.positive(im, 'width', p),
        height: f.positive(im, 'height', p),
        location: f.id(im, 'location', p),
        annotations: [],
      };
      const other = imageFileOf.get(draft.id);
      if (other) f.fail(`${p}id`, `image id "${draft.id}" also appears in ${other}`);
      imageFileOf.set(draft.id, `${file} (${p.slice(0, -1)})`);
      resolveInsideRoot(join(root, CCT_IMAGE_DIR), draft.fileName, { file, row: `${p}file_name` });
      byId.set(draft.id, draft);
      images.push(draft);
    });
    f.array(json, 'annotations', '').forEach((a, i) => {
      const p = `annotations[${i}].`;
      const imageId = f.id(a, 'image_id', p);
      const category = Number(f.id(a, 'category_id', p));
      const img = byId.get(imageId);
      if (!img) return f.fail(`${p}image_id`, `no image with id "${imageId}" in this file`);
      img.annotations.push({ category, bbox: (a as Record<string, unknown>).bbox });
    });
  }

  const classIds = [...categories.keys()].filter((id) => id !== CCT_EMPTY_CATEGORY).sort((a, b) => a - b);
  const classNames = classIds.map((id) => categories.get(id)!);
  const labelOf = new Map(classIds.map((id, i) => [id, i]));

  let droppedEmpty = 0, droppedUnannotated = 0;
  const kept: { draft: ImageDraft; row: SourceRow }[] = [];
  for (const d of images) {
    const animal = d.annotations.filter((a) => a.category !== CCT_EMPTY_CATEGORY);
    if (!d.annotations.length) { droppedUnannotated++; continue; }
    if (!animal.length) { droppedEmpty++; continue; }
    // CCT labels are per image; if annotators disagree, the majority category wins (ties: lowest id).
    const counts = new Map<number, number>();
    for (const a of animal) counts.set(a.category, (counts.get(a.category) ?? 0) + 1);
    const category = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
    const label = labelOf.get(category);
    const row = baseRow({
      id: d.id, split: d.split, label: label ?? -1, class_name: label === undefined ? `(category ${category})` : classNames[label],
      path: `${CCT_IMAGE_DIR}/${d.fileName}`, location: d.location, group: d.location,
    });
    kept.push({
      draft: d,
      row: label === undefined
        ? errorRow(row, `${join(root, cctAnnotationFile(d.split))}: image ${d.id} has category_id ${category}, which is not in categories; add it or fix the annotation`)
        : row,
    });
  }

  const rows = await mapLimit(kept, async ({ draft, row }) => {
    if (row.status === 'error') return row;
    return rowOrError(row, async (r) => {
      const stored = await probeImage(join(root, r.path), { maxPixels: opts.maxPixels });
      const boxes = draft.annotations.filter((a) => a.category !== CCT_EMPTY_CATEGORY)
        .map((a) => rescaleBox(a.bbox, draft, stored)).filter((b): b is number[] => b !== null).flat();
      return { ...r, width: stored.width, height: stored.height, boxes: boxes.length ? boxes : null };
    });
  }, { concurrency: opts.concurrency, progress: opts.progress, stage: 'cct' });

  return {
    rows,
    classNames,
    config: {
      category_ids: classIds,
      dropped_category: CCT_EMPTY_CATEGORY,
      fingerprint,
      dropped: { empty: droppedEmpty, unannotated: droppedUnannotated },
    },
  };
}
