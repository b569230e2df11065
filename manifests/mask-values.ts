import { UserError } from './errors.ts';

/**
 * Declared mask values: `mask_format` `png-values:<spec>` says which pixel values of a one-channel mask PNG are the
 * object, every other value (0, and a VOC-style 255 border unless listed) being background. The spec lists values
 * and ranges, e.g. `1,3` (Oxford-IIIT Pet trimaps: 1 pet, 2 background, 3 border) or `1-20` (the classes of a label
 * map). Plain `png-nonzero` would read such masks as "object everywhere".
 */
export const PNG_VALUES_FORMAT = 'png-values';

/** The canonical spec of a `--mask-foreground` value (sorted, merged ranges), or a UserError naming the flag. */
export function canonicalMaskValues(spec: string, flag = '--mask-foreground'): string {
  const on = maskValueTable(spec, flag);
  const parts: string[] = [];
  for (let v = 0; v < 256; v++) {
    if (!on[v]) continue;
    let e = v;
    while (e + 1 < 256 && on[e + 1]) e++;
    parts.push(e === v ? String(v) : e === v + 1 ? `${v},${e}` : `${v}-${e}`);
    v = e;
  }
  return parts.join(',');
}

/** 256 entries, 1 for the values `spec` calls object. */
export function maskValueTable(spec: string, flag = 'mask_format'): Uint8Array {
  const on = new Uint8Array(256);
  const bad = (why: string): never => {
    throw new UserError(`${flag} "${spec}": ${why}`, { fix: 'list the mask values that are the object, as values and ranges from 0 to 255: e.g. 1,3 or 1-20' });
  };
  const items = spec.split(',').map((t) => t.trim());
  if (!spec.trim() || items.some((t) => t === '')) bad('empty item');
  for (const t of items) {
    const m = /^(\d{1,3})(?:-(\d{1,3}))?$/.exec(t);
    if (!m) bad(`"${t}" is not a value or a range`);
    const a = Number(m![1]), b = m![2] === undefined ? a : Number(m![2]);
    if (a > 255 || b > 255 || b < a) bad(`"${t}" is not within 0-255, low to high`);
    on.fill(1, a, b + 1);
  }
  return on;
}
