/**
 * The trainer's data stream (DESIGN §5). Reads the source manifest and the corpus manifests a METHOD needs, joins
 * every original with its own CF and F images by source_id, and yields batches in which each original and its
 * generated images sit in the same step: B originals become up to (1 + #terms)·B images.
 *
 * This module gathers the data-*.ts modules under one name, so callers need not know where each part lives:
 * data-index.ts (manifests → DatasetIndex), data-train.ts (train batches), data-eval.ts (eval batches),
 * data-masks.ts (object masks).
 */
export * from './data-index.ts';
export * from './data-train.ts';
export * from './data-eval.ts';
export * from './data-masks.ts';
