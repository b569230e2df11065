import pLimit from 'p-limit';

export type SynthProgress = (done: number, total: number, stage: string) => void;

/**
 * Bounded-concurrency loop. Each item's bytes depend only on the item, so completion order cannot change outputs.
 * After the first failure no new item starts, and it resolves (rejecting with that first error) only once the
 * items in flight have settled: a caller that then removes the half-built output must not race writes still
 * running, which would fail its cleanup (ENOTEMPTY) or recreate folders behind it.
 */
export async function forEachLimit<T>(items: readonly T[], fn: (item: T, i: number) => Promise<void>, opts: { concurrency?: number; progress?: SynthProgress; stage?: string } = {}): Promise<void> {
  const limit = pLimit(opts.concurrency ?? 4);
  let done = 0;
  // the first error in time is the cause (ENOSPC); later ones in flight are often its consequences
  let first: { error: unknown } | null = null;
  await Promise.allSettled(items.map((it, i) => limit(async () => {
    if (first) return;
    try {
      await fn(it, i);
    } catch (e) {
      first ??= { error: e };
      return;
    }
    opts.progress?.(++done, items.length, opts.stage ?? '');
  })));
  if (first) throw (first as { error: unknown }).error;
}
