import { setFlagsFromString } from 'node:v8';
import { parseInteger } from './flags.ts';

/**
 * V8's old generation grows to a multiple of what survived the last full collection before it collects again, and
 * picks that multiple itself (1.1 to 4) from how fast it collects. A long batch run that holds a dataset's rows
 * (about 350 bytes each) and promotes a steady trickle of short-lived per-image objects then let garbage pile up to
 * three times the live heap: at 100k images `generate` peaked at 2.2× and `train` at 1.4–2.1× their 2k figures,
 * varying run to run with the collector's timing (docs/guarantees.md, `rss/*`). A fixed factor of 1.5 keeps the peak
 * near the live data, at the cost of a few more full collections (no measurable change in wall time at 100k).
 */
export const HEAP_GROWING_PERCENT = 50;

/** The environment variable that overrides it: a percent from 0 to 400; 0 leaves V8 its own choice. */
export const HEAP_GROWING_ENV = 'CFGEN_HEAP_GROWING_PERCENT';

/** Set the heap growing factor for this process (and its worker threads, which share V8's flags). */
export function boundHeapGrowth(env: NodeJS.ProcessEnv = process.env): void {
  const raw = env[HEAP_GROWING_ENV];
  const percent = raw === undefined || raw === '' ? HEAP_GROWING_PERCENT : parseInteger(`$${HEAP_GROWING_ENV}`, raw, { min: 0, max: 400 });
  // V8 reads the flag each time it sets the next collection's limit, so setting it at start-up is enough
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * The node options `generate` runs with (`make generate`, `make bench-generate`, the Slurm and Kubernetes job files
 * put them in NODE_OPTIONS): semi-spaces of 1 MB instead of V8's 16 MB.
 *
 * Why: each image passes through a few hundred kilobytes of short-lived buffers that are not ours to reuse (the
 * source file's bytes, sharp's decoded pixels, the encoded PNG; our own go back to pipeline/pixel-pool.ts). V8 counts
 * them as external memory and starts a full mark-compact once 64 MB of it has piled up since the last one, dead or
 * not. In a 16 MB nursery the dead buffers were not scavenged before that, so a one-method run marked the whole heap
 * every 40 to 60 images; in a 1 MB one, cheap scavenges free them first and full collections all but stop: 0 instead
 * of 5 to 9 per 300 images, and 0.3 to 0.6 ms less CPU per image (docs/benchmarks.md). The size can only be set when
 * node starts, hence NODE_OPTIONS. Worker threads (`--workers 2+`) showed no gain from a small young generation
 * (their resource limits), so they keep V8's default.
 */
export const GENERATE_NODE_OPTIONS = '--max-semi-space-size=1';
