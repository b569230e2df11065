import pLimit from 'p-limit';

export type SynthProgress = (done: number, total: number, stage: string) => void;

/** Bounded-concurrency loop. Each item's bytes depend only on the item, so completion order cannot change outputs. */
export async function forEachLimit<T>(items: readonly T[], fn: (item: T, i: number) => Promise<void>, opts: { concurrency?: number; progress?: SynthProgress; stage?: string } = {}): Promise<void> {
  const limit = pLimit(opts.concurrency ?? 4);
  let done = 0;
  await Promise.all(items.map((it, i) => limit(async () => {
    await fn(it, i);
    opts.progress?.(++done, items.length, opts.stage ?? '');
  })));
}
