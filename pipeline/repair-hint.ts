import { dirname, join } from 'node:path';
import { stableStringify } from '../manifests/io.ts';
import { RESERVED_INFILL_NAMES, getInfill, type Params } from './infills/index.ts';
import { DEFAULT_MAX_PIXELS } from './decode.ts';

/**
 * The command that repairs a damaged corpus: `generate --verify` with the options that made it, read back from its
 * corpus.json. `--verify` re-hashes every image of every done shard and regenerates the shards whose files are
 * missing or modified; since every byte is a function of the config, the repaired corpus keeps its id.
 */

/** What corpus.json says about how the corpus was made (the fields this needs). */
export interface CorpusInfo {
  name?: string;
  config: Record<string, unknown>;
}

/** Quote a shell word only when it needs it. */
function sh(word: string): string {
  return /^[A-Za-z0-9_./:=,@+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The parameters that differ from the method's defaults (all of them when the method is not registered here). */
function paramFlags(name: string, params: Params): string[] {
  const m = getInfill(name);
  let defaults: Params = {};
  try {
    defaults = m ? m.parseParams({}) : {};
  } catch { /* a method that needs params: give them all */ }
  const out: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (stableStringify(defaults[k]) === stableStringify(v)) continue;
    out.push('--param', sh(`${name}.${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`));
  }
  return out;
}

/**
 * `npx tsx cfgen.ts generate --source <corpora>/<dataset>/source --methods <name> … --verify` for the corpus in
 * `dir`. `--source` names the source manifest beside the corpus, so the command works however the corpus was first
 * generated (--dataset or --source) and from any folder.
 */
export function repairCommand(dir: string, info: CorpusInfo): string {
  const c = info.config;
  const name = String(c.method ?? info.name ?? '');
  const args = ['npx', 'tsx', 'cfgen.ts', 'generate', '--source', sh(join(dirname(dir), String(c.source_manifest ?? 'source'))), '--methods', sh(name)];
  const plugin = c.plugin as { module?: string } | undefined;
  if (plugin?.module) args.push('--plugin', sh(plugin.module), ...(RESERVED_INFILL_NAMES.includes(name) ? ['--allow-plugin-override'] : []));
  if (typeof c.variants === 'number' && c.variants !== 1) args.push('--variants', String(c.variants));
  if (typeof c.size === 'number') args.push('--size', String(c.size));
  if (typeof c.seed === 'number' && c.seed !== 0) args.push('--seed', String(c.seed));
  if (Array.isArray(c.splits) && c.splits.join(',') !== 'train') args.push('--splits', sh(c.splits.join(',')));
  if (typeof c.shard_size === 'number' && c.shard_size !== 256) args.push('--shard-size', String(c.shard_size));
  if (c.format && c.format !== 'png') args.push('--format', String(c.format));
  if (typeof c.max_pixels === 'number' && c.max_pixels !== DEFAULT_MAX_PIXELS) args.push('--max-pixels', String(c.max_pixels));
  if (c.params && typeof c.params === 'object') args.push(...paramFlags(name, c.params as Params));
  args.push('--verify');
  return args.join(' ');
}
