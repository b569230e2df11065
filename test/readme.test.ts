import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { schemaMarkdown } from '../manifests/describe.ts';
import { SOURCE_COLUMNS, CORPUS_COLUMNS } from '../manifests/schema.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README stays in sync with the code', () => {
  it('documents every manifest column exactly as manifests/schema.ts defines it', () => {
    const tables = schemaMarkdown().replace(/#### /g, '### ');
    expect(readme).toContain(tables.trim());
    for (const c of [...SOURCE_COLUMNS, ...CORPUS_COLUMNS]) expect(readme).toContain(`| \`${c.name}\` |`);
  });

  it('gives the test command CI runs', () => {
    const ci = readFileSync(new URL('../.ci/run', import.meta.url), 'utf8');
    expect(ci).toMatch(/^make test( |$)/m);
    expect(readme).toMatch(/^make test\s/m);
  });

  it('names every Makefile target a user types', () => {
    const mk = readFileSync(new URL('../Makefile', import.meta.url), 'utf8');
    const targets = mk.split('\n').filter((l) => /^\.PHONY:/.test(l) || /^\s+bench/.test(l)).join(' ')
      .replace(/\.PHONY:|\\/g, ' ').split(/\s+/).filter((t) => t && !['help', 'install', 'clean'].includes(t));
    for (const t of targets) expect(readme, `README mentions make ${t}`).toContain(`make ${t}`);
  });
});
