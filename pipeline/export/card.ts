import { columnsFor, type CorpusInfo, type ManifestKind, type ManifestMetadata } from '../../manifests/index.ts';
import { IMAGE_COLUMN, LABEL_COLUMN } from './features.ts';

/**
 * The dataset card (`README.md`) beside an export's shards: the YAML header the Hugging Face Hub reads (licence,
 * task, the data files of each split, the features) and a description of the corpus it came from.
 */

/** What the card describes. */
export interface CardInput {
  format: 'parquet' | 'webdataset';
  kind: ManifestKind;
  info: CorpusInfo;
  metadata: ManifestMetadata;
  /** rows exported per split, in split order */
  splitRows: { split: string; rows: number }[];
  leftOut: { skipped: number; error: number };
  /** the data file pattern of a split, relative to the card */
  pattern: (split: string) => string;
}

/**
 * The Hub licence id. Synthetic datasets are ours and Noto emoji (Apache-2.0); Caltech Camera Traps is CDLA
 * Permissive 1.0; any other dataset keeps its own terms, which we cannot state for it.
 */
export function licenceOf(dataset: string): string {
  if (dataset.startsWith('synth-')) return 'apache-2.0';
  if (dataset === 'cct') return 'cdla-permissive-1.0';
  return 'other';
}

function sizeCategory(n: number): string {
  const cats: [number, string][] = [[1e3, 'n<1K'], [1e4, '1K<n<10K'], [1e5, '10K<n<100K'], [1e6, '100K<n<1M'], [1e7, '1M<n<10M']];
  return cats.find(([max]) => n < max)?.[1] ?? 'n>1M';
}

// JSON strings are valid YAML double-quoted scalars: every free-text value goes through this
const q = (s: string): string => JSON.stringify(s);

function yamlFeatures(kind: ManifestKind, classNames: readonly string[]): string[] {
  const out = ['  features:', `  - name: ${IMAGE_COLUMN}`, '    dtype: image'];
  for (const c of columnsFor(kind)) {
    out.push(`  - name: ${c.name}`);
    if (c.name === LABEL_COLUMN) {
      out.push('    dtype:', '      class_label:', '        names:', ...classNames.map((n, i) => `          '${i}': ${q(n)}`));
    } else if (c.type === 'list<float32>') out.push('    sequence: float32');
    else out.push(`    dtype: ${({ utf8: 'string', int32: 'int32', float32: 'float32', bool: 'bool' } as Record<string, string>)[c.type]}`);
  }
  return out;
}

/** The YAML front matter. */
export function cardYaml(c: CardInput): string {
  const total = c.splitRows.reduce((a, s) => a + s.rows, 0);
  const lines = [
    '---',
    `license: ${licenceOf(c.metadata.dataset)}`,
    'task_categories:', '- image-classification',
    `pretty_name: ${q(`${c.metadata.dataset} ${c.info.name} (cfgen ${c.kind === 'eval' ? 'stress test' : c.info.kind === 'cf' ? 'counterfactuals' : 'factuals'})`)}`,
    'size_categories:', `- ${sizeCategory(total)}`,
    'tags:', '- cfgen', '- synthetic', ...(c.kind === 'eval' ? ['- robustness'] : [`- ${c.info.kind === 'cf' ? 'counterfactual' : 'factual'}`]),
    'configs:', '- config_name: default', '  data_files:',
    ...c.splitRows.flatMap((s) => [`  - split: ${s.split}`, `    path: ${q(c.pattern(s.split))}`]),
  ];
  if (c.format === 'parquet') {
    // the features as `datasets` writes them; WebDataset features are inferred from the member extensions instead
    lines.push('dataset_info:', ...yamlFeatures(c.kind, c.metadata.class_names), '  splits:',
      ...c.splitRows.flatMap((s) => [`  - name: ${s.split}`, `    num_examples: ${s.rows}`]));
  }
  lines.push('---');
  return lines.join('\n');
}

function meaning(c: CardInput): string {
  if (c.kind === 'eval') {
    return 'an evaluation set: IN-9-style background variants of the test images (`variant` column). `label` is the class of the object shown.';
  }
  if (c.info.kind === 'cf') {
    return '**counterfactuals**: the object was removed and its box filled in, so the image should *no longer* show class `label`. '
      + '`non_y` is true on every row: `label` is the class the image must not be taken for (the paper trains them with the CF loss −log(1 − p_label)), not a target.';
  }
  return '**factuals**: the background was replaced and the object kept, so `label` is the right class (`non_y` is false).';
}

/** The whole card: front matter, then what the corpus is and how to read it. */
export function datasetCard(c: CardInput): string {
  const cfg = c.metadata.config as Record<string, unknown>;
  const total = c.splitRows.reduce((a, s) => a + s.rows, 0);
  const row = (k: string, v: unknown) => `| ${k} | ${typeof v === 'string' ? v : `\`${JSON.stringify(v)}\``} |`;
  const files = c.splitRows.map((s) => `\`${c.pattern(s.split)}\``).join(', ');
  const load = c.format === 'parquet'
    ? ['```python', 'from datasets import load_dataset', '', `ds = load_dataset("parquet", data_files={${c.splitRows.map((s) => `${q(s.split)}: ${q(c.pattern(s.split))}`).join(', ')}})`,
      `# or load_dataset(".") in this folder; ds["${c.splitRows[0].split}"][0]["image"] is a PIL image, ds["${c.splitRows[0].split}"].features["label"].names the classes`, '```']
    : ['```python', 'import glob, webdataset as wds', '', `ds = wds.WebDataset(sorted(glob.glob(${q(c.pattern(c.splitRows[0].split))})), shardshuffle=False).decode("pil").to_tuple("${c.metadata.config.format === 'jpg' ? 'jpg' : 'png'}", "cls", "json")`, '```'];
  return [
    cardYaml(c),
    '',
    `# ${c.metadata.dataset} · ${c.info.name}`,
    '',
    `Generated with cfgen from the \`${c.metadata.dataset}\` dataset by the \`${c.info.name}\` method, after Chang, Adam & Goldenberg, `
      + '*Towards Robust Classification Model by Counterfactual and Invariant Data Generation* (CVPR 2021). '
      + `The images are ${meaning(c)}`,
    '',
    `Licence: ${licenceOf(c.metadata.dataset) === 'other' ? `the terms of the source dataset (\`${c.metadata.dataset}\`) apply; check them before sharing this export.` : licenceOf(c.metadata.dataset)}.`,
    '',
    '## Provenance',
    '',
    '| | |', '|---|---|',
    row('corpus id', `\`${c.info.corpus_id}\``),
    row('dataset, classes', `\`${c.metadata.dataset}\`, ${c.metadata.class_names.map((n) => `\`${n}\``).join(', ')}`),
    row('method (params)', `\`${c.info.name}\` (\`${JSON.stringify(cfg.params ?? cfg.variants ?? {})}\`)`),
    row('variants, seed, size, format', `${JSON.stringify(cfg.variants)}, ${JSON.stringify(cfg.seed)}, ${cfg.size === null ? 'stored size' : JSON.stringify(cfg.size)}, ${String(cfg.format)}`),
    row('source manifest digest', `\`${c.info.source_digest}\``),
    row('cfgen version', `\`${c.info.tool_version}\``),
    row('rows', `${total} (${c.splitRows.map((s) => `${s.split}: ${s.rows}`).join(', ')}); left out, having no image: ${c.leftOut.skipped} skipped, ${c.leftOut.error} error`),
    '',
    `The full configuration is in every shard's metadata (key \`cfgen\`, the corpus manifest's own metadata) and in \`export.json\`, which also lists every file with its SHA-256. Two exports of the same corpus are byte-identical.`,
    '',
    '## Files and columns',
    '',
    c.format === 'parquet'
      ? `Parquet shards ${files}, row groups of 100 rows. Column \`image\` holds the corpus file's bytes and its path in the corpus (the Hugging Face Image feature); \`label\` is a ClassLabel; every other column is the corpus manifest's:`
      : `WebDataset tar shards ${files}: per sample \`<key>.${String(cfg.format ?? 'png')}\` (the corpus file's bytes), \`<key>.cls\` (\`label\`, decimal) and \`<key>.json\` (the manifest row, with these columns):`,
    '',
    '| column | meaning |', '|---|---|',
    // a Markdown table cell: `|` would end it, and `<source_id>` would render as an HTML tag
    ...columnsFor(c.kind).map((col) => `| \`${col.name}\` | ${col.doc.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;')} |`),
    '',
    '## Loading',
    '',
    ...load,
    '',
    '## Citation',
    '',
    '```bibtex',
    '@inproceedings{chang2021towards,',
    '  title     = {Towards Robust Classification Model by Counterfactual and Invariant Data Generation},',
    '  author    = {Chang, Chun-Hao and Adam, George Alexandru and Goldenberg, Anna},',
    '  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},',
    '  pages     = {15212--15221},',
    '  year      = {2021}',
    '}',
    '```',
    '',
  ].join('\n');
}
