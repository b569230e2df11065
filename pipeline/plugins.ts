import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserError } from '../manifests/errors.ts';
import { RESERVED_INFILL_NAMES, listInfills, noteInfillModule, restoreInfills, snapshotInfills, type InfillMethod } from './infills/index.ts';

/**
 * `generate --plugin <module>`: a plugin is code you run, with your permissions, in this process and in every
 * worker thread; it is imported as it is, nothing is sandboxed. What this module adds around the import:
 * it says which methods each plugin registered, refuses a plugin that replaces a built-in method (its corpus would
 * carry the built-in's name with other bytes) unless the user allows it, and notes each method's module so that
 * `generate` hashes the plugin's source into the corpus config.
 */

/** What one plugin module did. */
export interface LoadedPlugin {
  /** the module as given on the command line, resolved to an absolute path */
  file: string;
  /** the methods it registered or replaced */
  registered: string[];
  /** the reserved (built-in) names among them */
  replaced: string[];
}

/**
 * Import each plugin module in order and report what it registered. Throws a UserError for a module that does not
 * exist, and for one that replaces a reserved name (RESERVED_INFILL_NAMES) unless `allowOverride`; `log` gets a line
 * for a module that registered nothing (a module imported twice registers nothing the second time).
 */
export async function loadPlugins(paths: readonly string[], opts: { allowOverride?: boolean; log?: (line: string) => void } = {}): Promise<LoadedPlugin[]> {
  const out: LoadedPlugin[] = [];
  for (const given of paths) {
    const file = resolve(given);
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
    } catch {
      throw new UserError('plugin module not found', { file, fix: 'give the path of a .ts/.mts/.js module that calls registerInfill (docs/contributing.md, adding an infill)' });
    }
    const url = pathToFileURL(file).href;
    const before = new Map<string, InfillMethod>(listInfills().map((m) => [m.name, m]));
    const snapshot = snapshotInfills();
    await import(url);
    const registered = listInfills().filter((m) => before.get(m.name) !== m).map((m) => m.name);
    const replaced = registered.filter((n) => before.has(n) && RESERVED_INFILL_NAMES.includes(n));
    if (replaced.length && !opts.allowOverride) {
      // the import has already registered them: undo it, so a caller that goes on uses the built-ins
      restoreInfills(snapshot);
      throw new UserError(`plugin replaces the built-in method${replaced.length > 1 ? 's' : ''} ${replaced.join(', ')}`, {
        file,
        fix: 'give your method a name of its own (cf-<name> / f-<name>), or pass --allow-plugin-override to replace the built-in on purpose (its corpus config then records the plugin, so its corpus id differs from the built-in\'s)',
      });
    }
    for (const n of registered) noteInfillModule(n, url);
    if (!registered.length) {
      opts.log?.(`plugin ${given} registered no new infill method (already imported, or it never calls registerInfill from pipeline/infills/index.ts)`);
    }
    out.push({ file, registered, replaced });
  }
  return out;
}

