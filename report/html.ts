import { directionMark, formatCell, type ResultTable } from './table.ts';
import { paperTableFor } from './reference.ts';
import type { RunRecord } from './collect.ts';

/**
 * index.html: one self-contained page (charts as inline SVG, figures as PNG data URIs, no script, no external
 * reference), so it opens offline and can be mailed or attached as a single file.
 */

/** Escape text for HTML. */
export const esc = (s: string): string => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A figure of one dataset's section. */
export interface Figure {
  title: string;
  caption: string;
  /** inline SVG markup, or a PNG to embed */
  svg?: string;
  png?: Buffer;
}

/** One dataset's part of the page. */
export interface DatasetSection {
  table: ResultTable;
  figures: Figure[];
}

/** The table, or the part of it whose columns pass `keep` (a page is narrower than results.md may be). */
function tableHtml(t: ResultTable, keep: (key: string) => boolean = () => true): string {
  const columns = t.columns.filter((c) => keep(c.key));
  if (!columns.length) return '';
  const head = ['Method', 'n', ...columns.map((c) => `${c.key.replace(/^stress /, '')}${directionMark(c)}`)].map((h) => `<th>${esc(h)}</th>`).join('');
  const body = t.rows.map((r) => {
    const n = Math.max(0, ...columns.map((c) => r.cells[c.key].n));
    const cells = columns.map((c) => {
      const cell = r.cells[c.key];
      const text = esc(formatCell(cell, c));
      const paper = cell.paper !== null ? ` <span class="paper">(paper ${cell.paper.toFixed(1)})</span>` : '';
      return `<td${cell.best ? ' class="best"' : ''}>${cell.best ? `<b>${text}</b>` : text}${paper}</td>`;
    }).join('');
    return `<tr><td><code>${esc(r.method)}</code></td><td>${n}</td>${cells}</tr>`;
  }).join('\n');
  return `<div class="wide"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

function paperHtml(dataset: string): string {
  const ref = paperTableFor(dataset);
  if (!ref) return '';
  const cols = Object.keys(ref.columns);
  const rows = ref.rows.map((r) => `<tr><td>${esc(r.label)}</td>${cols.map((c) => `<td>${r.values[c]?.toFixed(1) ?? ''}</td>`).join('')}</tr>`).join('');
  return `<p>Paper (DESIGN §8) for ${esc(dataset)}:</p><table><thead><tr><th>Method</th>${cols.map((c) => `<th>${esc(ref.columns[c])}</th>`).join('')}</tr></thead><tbody>${rows}</tbody></table>`;
}

function figureHtml(f: Figure): string {
  const body = f.svg ?? (f.png ? `<img alt="${esc(f.title)}" src="data:image/png;base64,${f.png.toString('base64')}">` : '');
  return `<figure><figcaption><b>${esc(f.title)}</b>. ${esc(f.caption)}</figcaption>${body}</figure>`;
}

/** The whole page. */
export function reportHtml(o: { name: string; created: string; command: string; sections: DatasetSection[]; runs: readonly RunRecord[]; notes: string[] }): string {
  const sections = o.sections.map((s) => `<section><h2>${esc(s.table.dataset)}</h2>
<p>Test figures (%) at each run's best-validation checkpoint: mean ± sample std over seeds (n = seeds). Bold: best in its column; ↓: lower is better; →0: nearest zero is better. "AUPR" is the saliency AUPR by input gradient.</p>
${tableHtml(s.table, (k) => !k.startsWith('stress '))}
${s.table.columns.some((c) => c.key.startsWith('stress ')) ? `<p>Stress test (<code>cfgen eval --stress</code>, docs/stress-test.md), test accuracy per variant (%):</p>\n${tableHtml(s.table, (k) => k.startsWith('stress '))}` : ''}
<p class="note">${esc(s.table.note)}</p>
${paperHtml(s.table.dataset)}
${s.figures.map(figureHtml).join('\n')}
</section>`).join('\n');
  const runs = o.runs.map((r) => `<tr><td><code>${esc(r.id)}</code></td><td>${esc(r.dataset)}</td><td><code>${esc(r.method)}</code></td><td>${r.seed}</td><td>${r.epochs.length}</td><td>${r.eval ? `${r.eval.bestEpoch ?? '?'}` : 'not evaluated'}</td><td>${r.eval?.stress ? 'yes' : 'no'}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cfgen report: ${esc(o.name)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:12px}th,td{border:1px solid #ddd;padding:2px 4px;text-align:right;white-space:nowrap}
.wide{overflow-x:auto}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}td.best{background:#e8f5e9}.paper{color:#777}
figure{margin:18px 0}figcaption{margin-bottom:6px;color:#444}img{max-width:100%;image-rendering:pixelated}.note,.meta{color:#555}
code{font-size:12px}.runs td{text-align:left}
</style></head><body>
<h1>cfgen report: ${esc(o.name)}</h1>
<p class="meta">Written ${esc(o.created)} by <code>${esc(o.command)}</code>; ${o.runs.length} run(s). The same tables are in results.md and results.csv beside this file.</p>
${o.notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
${sections}
<section><h2>Runs</h2><table class="runs"><thead><tr><th>run</th><th>dataset</th><th>METHOD</th><th>seed</th><th>epochs</th><th>best epoch</th><th>stress</th></tr></thead><tbody>
${runs}
</tbody></table></section>
</body></html>
`;
}
