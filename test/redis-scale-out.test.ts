import { scaleOutTests } from './fixtures/scale-out.js';
import { redisConfig } from './fixtures/stores.js';

scaleOutTests('redis', (t) => redisConfig(t));
