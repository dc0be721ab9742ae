import { createRequire } from 'node:module';

// Both lib/core/ (sources) and dist/core/ (build) sit two levels below package.json.
const manifest = createRequire(import.meta.url)('../../package.json') as { name: string; version: string };

export const packageInfo = { name: manifest.name, version: manifest.version };
