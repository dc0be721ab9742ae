import { createRequire } from 'node:module';

// Both lib/ (sources) and dist/ (build) sit one level below package.json.
const manifest = createRequire(import.meta.url)('../package.json') as { name: string; version: string };

export const packageInfo = { name: manifest.name, version: manifest.version };
