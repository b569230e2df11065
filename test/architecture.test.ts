import { describe, expect, it } from 'vitest';
import fg from 'fast-glob';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { PROJECT_ROOT } from '../common/paths.ts';

/**
 * The import rules of docs/architecture.md, checked on the source: the two halves meet only in manifests/ (the
 * contract) and common/ (paths, flags, the model card, worker threads).
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  manifests: ['manifests'],
  common: ['common', 'manifests'],
  pipeline: ['pipeline', 'common', 'manifests'],
  trainer: ['trainer', 'common', 'manifests'],
  // the report reads runs (trainer) and draws corpora's sample grids (pipeline), so it sits above both halves
  report: ['report', 'pipeline', 'trainer', 'common', 'manifests'],
};

/** Relative imports (static, dynamic and re-exports) of a TypeScript source. */
export function relativeImports(source: string): string[] {
  const out: string[] = [];
  const re = /(?:import|export)\s[^'"`;]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|import\s+['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const m of source.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

function topFolder(abs: string): string {
  return relative(PROJECT_ROOT, abs).split(/[\\/]/)[0];
}

describe('architecture: who may import whom', () => {
  it('finds static, dynamic and side-effect imports', () => {
    const src = `import a from '../x/a.ts';\nimport { b } from "./b.ts";\nexport { c } from '../c.ts';\nconst d = await import('../d/d.ts');\nimport './e.ts';\nimport fs from 'node:fs';`;
    expect(relativeImports(src)).toEqual(['../x/a.ts', './b.ts', '../c.ts', './e.ts', '../d/d.ts'].sort((p, q) => src.indexOf(p) - src.indexOf(q)));
  });

  it('manifests/ imports nothing of ours, common/ only manifests/, and the pipeline and the trainer never each other', async () => {
    const files = await fg(Object.keys(MAY_IMPORT).map((f) => `${f}/**/*.ts`), { cwd: PROJECT_ROOT });
    expect(files.length).toBeGreaterThan(50);
    const bad: string[] = [];
    for (const f of files) {
      const from = topFolder(join(PROJECT_ROOT, f));
      for (const spec of relativeImports(readFileSync(join(PROJECT_ROOT, f), 'utf8'))) {
        const to = topFolder(resolve(dirname(join(PROJECT_ROOT, f)), spec));
        if (!MAY_IMPORT[from].includes(to)) bad.push(`${f} imports ${spec} (${from}/ may import ${MAY_IMPORT[from].join(', ')})`);
      }
    }
    expect(bad).toEqual([]);
  });
});
