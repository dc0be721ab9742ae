import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SessionServerConfig } from '../config/config.js';
import { DEFAULTS } from '../config/defaults.js';
import { ConfigError } from '../core/errors.js';
import { givenOnCommandLine, envName, settingName } from './flag-errors.js';

/** Where a setting the user gave came from, as they would look for it. */
function whereSet(field: string, args: readonly string[], env: NodeJS.ProcessEnv): string {
  return givenOnCommandLine(field, args) || env[envName(field)] !== undefined ? settingName(field, args, env) : `${field} in the config file`;
}

/**
 * Settings that are well-formed but cannot work, caught before the server starts rather than
 * at the first request: a commands folder that is not there (the default may be absent), a
 * PostgreSQL store with nothing saying which database.
 */
export function checkStartable(config: SessionServerConfig, args: readonly string[], env: NodeJS.ProcessEnv = process.env): void {
  const { commandsDir } = config;
  if (commandsDir !== undefined && commandsDir !== DEFAULTS.commandsDir) {
    const path = resolve(commandsDir);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat?.isDirectory()) {
      throw new ConfigError(`${whereSet('commandsDir', args, env)}: ${stat ? 'not a folder' : 'no such folder'}: ${path}`);
    }
  }
  if (config.storage === 'postgres' && config.postgresUrl === undefined && !Object.keys(env).some((name) => /^PG[A-Z]+$/.test(name))) {
    throw new ConfigError(
      'storage postgres needs a database: set --postgres-url (or SESSIONSERVER_POSTGRES_URL, or postgresUrl in the config file) ' +
        'to postgres://user:password@host:port/database, or the PG* variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD)',
    );
  }
}
