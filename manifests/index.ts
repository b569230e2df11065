export * from './schema.ts';
export * from './writer.ts';
export * from './reader.ts';
export * from './errors.ts';
export * from './io.ts';
export * from './rng.ts';
export * from './version.ts';
export * from "./pixels.ts";
