import { scaleOutTests } from './fixtures/scale-out.js';
import { postgresConfig } from './fixtures/stores.js';

scaleOutTests('postgres', (t) => postgresConfig(t));
