import { readFileSync } from 'node:fs';

/** The tool version recorded in every manifest's metadata. */
export const TOOL_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
