import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_BEGIN, SCHEMA_END, generatedSection, schemaMarkdown, withCurrentSchema } from '../manifests/describe.ts';
import { SOURCE_COLUMNS, CORPUS_COLUMNS } from '../manifests/schema.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');

// ---- GitHub-style heading slugs and relative-link checking (exported so the unit tests below exercise them) ----

/** The text GitHub renders for a heading's Markdown: code spans and links reduced to their text, emphasis and tags dropped. */
export function headingText(md: string): string {
  // Code spans render literally (`<dataset>` stays text); only the parts between them are Markdown.
  return md.split(/(`[^`]*`)/).map((part, i) => (i % 2 === 1 ? part.slice(1, -1) : part
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<\/?[a-z][\w-]*(\s[^>]*)?>/gi, '')
    .replace(/\*+/g, ''))).join('').trim();
}

/** GitHub's anchor for a heading text: lowercase, punctuation other than '-' and '_' dropped, spaces → '-'. */
export function slug(text: string): string {
  return text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '').replace(/ /g, '-');
}

/** Lines outside fenced code blocks, with inline code spans blanked (links inside code are not links). */
function proseLines(markdown: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let fence: string | null = null;
  markdown.split('\n').forEach((raw, i) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(raw);
    if (m) {
      if (fence === null) fence = m[1][0];
      else if (m[1][0] === fence) fence = null;
      return;
    }
    if (fence === null) out.push({ line: i + 1, text: raw });
  });
  return out;
}

/** Every heading anchor of a Markdown text, duplicates numbered -1, -2, … as GitHub does. */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const { text } of proseLines(markdown)) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!h) continue;
    const base = slug(headingText(h[1]));
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

export interface Link { line: number; target: string }

/** Inline links and images `[text](target)` / `![alt](target)` outside code. */
export function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const prose = text.replace(/(`+)[\s\S]*?\1/g, (s) => ' '.repeat(s.length));
    for (const m of prose.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ line, target: m[1] });
  }
  return links;
}

/**
 * The broken relative links of one Markdown file, as `file:line: why`. A link is broken when its path does not exist
 * (relative to the file) or its `#anchor` matches no heading of the target .md (the file itself for `#anchor`).
 * http(s) and mailto links are not checked.
 */
export function brokenLinks(file: string, root: string): string[] {
  const text = readFileSync(file, 'utf8');
  const where = (l: Link) => `${relative(root, file)}:${l.line}`;
  const problems: string[] = [];
  for (const l of linksOf(text)) {
    if (/^(https?:|mailto:)/i.test(l.target)) continue;
    const hash = l.target.indexOf('#');
    const path = decodeURIComponent(hash < 0 ? l.target : l.target.slice(0, hash));
    const anchor = hash < 0 ? null : decodeURIComponent(l.target.slice(hash + 1));
    const target = path ? resolve(dirname(file), path) : file;
    if (!existsSync(target)) { problems.push(`${where(l)}: ${l.target}: no such file ${relative(root, target)}`); continue; }
    if (anchor === null || !target.endsWith('.md')) continue;
    if (!anchorsOf(readFileSync(target, 'utf8')).has(anchor)) {
      problems.push(`${where(l)}: ${l.target}: no heading with anchor #${anchor} in ${relative(root, target)}`);
    }
  }
  return problems;
}

const userDocs = () => ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

describe('link checker', () => {
  it('computes GitHub heading slugs', () => {
    expect(slug(headingText('Two commands on a fresh machine'))).toBe('two-commands-on-a-fresh-machine');
    expect(slug(headingText('CF(CAGAN): ONNX inpainting'))).toBe('cfcagan-onnx-inpainting');
    expect(slug(headingText('`cf-cagan` parameters'))).toBe('cf-cagan-parameters');
    expect(slug(headingText('Presets (DESIGN §8, paper Table 8) — every value'))).toBe('presets-design-8-paper-table-8--every-value');
    expect(slug(headingText('Run folder `runs/<run-id>/`'))).toBe('run-folder-runsrun-id');
    expect(slug(headingText('**Bold** and [a link](x.md) and snake_case'))).toBe('bold-and-a-link-and-snake_case');
  });

  it('numbers duplicate headings and ignores headings inside code blocks', () => {
    const md = '# Top\n## Measured\ntext\n## Measured\n```sh\n# not a heading\n```\n### Measured\n';
    expect([...anchorsOf(md)]).toEqual(['top', 'measured', 'measured-1', 'measured-2']);
  });

  it('finds links and images outside code, with their lines', () => {
    const md = 'see [a](a.md#x) and ![img](p.png)\n`[not](code.md)`\n```\n[nor](this.md)\n```\n[b](<b.md>) [c](https://x.org)\n';
    expect(linksOf(md)).toEqual([
      { line: 1, target: 'a.md#x' }, { line: 1, target: 'p.png' }, { line: 6, target: 'b.md' }, { line: 6, target: 'https://x.org' },
    ]);
  });

  it('reports every broken file, cross-file anchor and in-file anchor with its file and line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfgen-links-'));
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'docs', 'b.md'), '# B\n## Section one\n## Section one\n');
    writeFileSync(join(dir, 'fig.png'), '');
    writeFileSync(join(dir, 'a.md'), [
      '# A', '## Local', '',
      'ok: [b](docs/b.md) [s](docs/b.md#section-one) [s2](docs/b.md#section-one-1) [l](#local) ![f](fig.png) [w](https://e.org/#nope)',
      'bad file: [x](docs/missing.md)',
      'bad anchor: [y](docs/b.md#section-two)',
      'bad local: [z](#nowhere) ![g](img/none.png)',
    ].join('\n'));
    expect(brokenLinks(join(dir, 'a.md'), dir)).toEqual([
      'a.md:5: docs/missing.md: no such file docs/missing.md',
      'a.md:6: docs/b.md#section-two: no heading with anchor #section-two in docs/b.md',
      'a.md:7: #nowhere: no heading with anchor #nowhere in a.md',
      'a.md:7: img/none.png: no such file img/none.png',
    ]);
  });
});

describe('user docs', () => {
  it('every relative link and image in README.md and docs/*.md resolves (file and #anchor)', () => {
    const problems = userDocs().flatMap((f) => brokenLinks(join(ROOT, f), ROOT));
    expect(problems, `broken links:\n${problems.join('\n')}`).toEqual([]);
  });

  it('docs/manifests.md holds exactly the tables manifests/describe.ts generates from manifests/schema.ts', () => {
    const doc = read('docs/manifests.md');
    expect(doc).toContain(SCHEMA_BEGIN);
    expect(doc).toContain(SCHEMA_END);
    expect(generatedSection(doc), 'run: npx tsx manifests/describe.ts --write docs/manifests.md').toBe(schemaMarkdown());
    expect(withCurrentSchema(doc)).toBe(doc);
    for (const c of [...SOURCE_COLUMNS, ...CORPUS_COLUMNS]) expect(generatedSection(doc)).toContain(`| \`${c.name}\` |`);
  });

  it('the schema check can fail: a doc with a column left out differs from the generated tables', () => {
    const doc = read('docs/manifests.md').replace(/^\| `sha256` \|.*\n/m, '');
    expect(generatedSection(doc)).not.toBe(schemaMarkdown());
    expect(withCurrentSchema(doc)).not.toBe(doc);
  });

  it('README gives the test command CI runs', () => {
    const ci = read('.ci/run');
    expect(ci).toMatch(/^make test( |$)/m);
    const shBlocks = [...read('README.md').matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]);
    expect(shBlocks.some((b) => /^make test(\s|$)/m.test(b)), 'a ```sh block in README.md has a line starting with `make test`').toBe(true);
  });

  it('README names every Makefile target a user types', () => {
    const mk = read('Makefile');
    const phony = /^\.PHONY:((?:.*\\\n)*.*)$/m.exec(mk);
    expect(phony, 'Makefile has a .PHONY line').not.toBeNull();
    const targets = phony![1].replace(/\\\n/g, ' ').split(/\s+/).filter((t) => t && !['help', 'install', 'clean'].includes(t));
    expect(targets.length).toBeGreaterThan(5);
    const readme = read('README.md');
    const missing = targets.filter((t) => !new RegExp(`\`make ${t.replace(/[-]/g, '\\-')}[\\s\`]`).test(readme));
    expect(missing, 'targets README.md does not name as `make <target>`').toEqual([]);
  });

  it('README stays short: reference material lives in docs/', () => {
    expect(read('README.md').split('\n').length).toBeLessThanOrEqual(260);
  });
});
