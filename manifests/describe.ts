/**
 * Prints the manifest schema as Markdown tables (the README's schema section is this output), so the docs
 * are generated from the one definition the code uses. `npx tsx manifests/describe.ts`
 */
import { SOURCE_COLUMNS, CORPUS_COLUMNS, type ColumnSpec } from './schema.ts';

export function schemaMarkdown(): string {
  const table = (cols: readonly ColumnSpec[]) => [
    '| column | Arrow type | nullable | meaning |',
    '|---|---|---|---|',
    ...cols.map((c) => `| \`${c.name}\` | ${c.type} | ${c.nullable ? 'yes' : 'no'} | ${c.doc.replace(/\|/g, '\\|')} |`),
  ].join('\n');
  return `#### Source manifest (\`corpora/<dataset>/source/source-NNNNN.arrow\`)\n\n${table(SOURCE_COLUMNS)}\n\n` +
    `#### Corpus manifest (\`corpora/<dataset>/<method>/manifest/part-NNNNN.arrow\`)\n\n${table(CORPUS_COLUMNS)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(schemaMarkdown());
