import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../manifests/io.ts';
import type { EvalReport } from './evaluate.ts';

/**
 * A run's eval.json. A re-evaluation is often a cheaper one (say `--aupr-images 0` to refresh the accuracies), so
 * writing it must not destroy what an earlier, dearer evaluation computed: results the new evaluation left out
 * are kept from the old file, and `kept` says which, and from which checkpoint epoch they are.
 */

/** Where a kept result came from: the best-checkpoint epoch of the evaluation that computed it. */
export type KeptFrom = Record<string, { bestEpoch: number | null }>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * `now` with every value it lacks (absent or null) taken from `old`, object by object; arrays and numbers are
 * values (the new one wins). The paths taken from `old` are listed in the result's `kept`.
 */
export function mergeEvalReports(old: EvalReport, now: EvalReport): EvalReport {
  const kept: KeptFrom = {};
  const from = (path: string) => old.kept?.[path] ?? { bestEpoch: old.bestEpoch };
  const merge = (o: Record<string, unknown>, n: Record<string, unknown>, prefix: string): Record<string, unknown> => {
    const out: Record<string, unknown> = { ...n };
    for (const [k, ov] of Object.entries(o)) {
      if (prefix === '' && k === 'kept') continue;
      const path = prefix ? `${prefix}.${k}` : k;
      const nv = n[k];
      if ((nv === undefined || nv === null) && ov !== undefined && ov !== null) {
        out[k] = ov;
        // A value an earlier merge kept inside this subtree keeps its own, older origin.
        kept[path] = from(path);
        for (const p of Object.keys(old.kept ?? {})) if (p.startsWith(`${path}.`)) kept[p] = from(p);
      } else if (isObject(ov) && isObject(nv)) {
        out[k] = merge(ov, nv, path);
      }
    }
    return out;
  };
  const merged = merge(old as unknown as Record<string, unknown>, now as unknown as Record<string, unknown>, '') as unknown as EvalReport;
  delete merged.kept;
  return Object.keys(kept).length ? { ...merged, kept } : merged;
}

/** Write `<runDir>/eval.json`: `report` merged into the file already there (see mergeEvalReports). Returns what was written. */
export async function writeEvalReport(runDir: string, report: EvalReport, log?: (l: string) => void): Promise<EvalReport> {
  const file = join(runDir, 'eval.json');
  let old: EvalReport | null = null;
  try {
    old = JSON.parse(await readFile(file, 'utf8')) as EvalReport;
  } catch (e) {
    // A first evaluation has no file. An unreadable one is moved aside, not overwritten: it may be all there is.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      await rename(file, `${file}.unreadable`);
      log?.(`eval.json was unreadable (${(e as Error).message}); moved it to eval.json.unreadable`);
    }
  }
  const out = old ? mergeEvalReports(old, report) : report;
  if (out.kept) log?.(`kept from the earlier eval.json: ${Object.entries(out.kept).map(([p, k]) => `${p} (best epoch ${k.bestEpoch ?? '?'})`).join(', ')}`);
  await writeJsonAtomic(file, out);
  return out;
}
