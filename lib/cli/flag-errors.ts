import { closestName } from '../config/closest-name.js';
import { fitsRange, NUMBER_RANGES, numberRequirement } from '../config/config.js';

/** `lockTimeout` → `lock-timeout`. */
export function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** The environment variable yargs reads for a flag: `lock-timeout` → `SESSIONSERVER_LOCK_TIMEOUT`. */
export function envName(flag: string): string {
  return `SESSIONSERVER_${kebabCase(flag).replace(/-/g, '_').toUpperCase()}`;
}

/** Whether the command line itself holds `--flag` (any spelling yargs accepts). */
export function givenOnCommandLine(flag: string, args: readonly string[]): boolean {
  const kebab = kebabCase(flag);
  const camel = kebab.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
  const spellings = new Set([kebab, camel, `no-${kebab}`]);
  return args.some((arg) => arg.startsWith('--') && spellings.has(arg.slice(2).split('=')[0]!));
}

/** How a user would name a setting they gave: `--port`, or `SESSIONSERVER_PORT` when it came from there. */
export function settingName(flag: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): string {
  return !givenOnCommandLine(flag, args) && env[envName(flag)] !== undefined ? envName(flag) : `--${kebabCase(flag)}`;
}

/**
 * One line for what yargs found wrong (its own texts run to several lines, and it would print the
 * whole help before them): an unknown flag or SESSIONSERVER_* variable with the closest known one,
 * a value outside the choices, a flag without its value.
 */
export function describeYargsFailure(
  message: string,
  args: readonly string[],
  knownFlags: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  /** Flags whose SESSIONSERVER_* variable any subcommand reads. */
  knownVariableFlags: readonly string[] = knownFlags,
): string {
  const unknown = /^Unknown arguments?: (.+)$/.exec(message);
  if (unknown) {
    const name = unknown[1]!.split(', ')[0]!;
    if (!givenOnCommandLine(name, args) && env[envName(name)] !== undefined) {
      const suggestion = closestName(name, knownVariableFlags);
      return `unknown variable ${envName(name)}${suggestion ? ` (did you mean ${envName(suggestion)}?)` : ''}`;
    }
    if (!givenOnCommandLine(name, args)) return `unexpected argument "${name}"`;
    const suggestion = closestName(name, knownFlags);
    return `unknown flag --${kebabCase(name)}${suggestion ? ` (did you mean --${kebabCase(suggestion)}?)` : ''}`;
  }
  const choice = /Argument: ([\w-]+), Given: (.+?), Choices: (.+)$/m.exec(message);
  if (choice) return `${settingName(choice[1]!, args, env)} must be one of ${choice[3]!.replace(/"/g, '')}, got ${choice[2]}`;
  const missing = /^Not enough arguments following: ([\w-]+)$/.exec(message);
  if (missing) return `--${kebabCase(missing[1]!)} needs a value`;
  return message.split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
}

/**
 * Checks `serve`'s flags (and their SESSIONSERVER_* variables) before anything starts: a flag
 * given without its value, a number out of its range. Returns true, or one line naming the flag.
 */
export function checkServeFlags(argv: Record<string, unknown>, options: { string: string[]; number: string[] }, args: readonly string[]): true | string {
  const takesValue = new Set([...options.string, ...options.number]);
  for (const [index, arg] of args.entries()) {
    if (arg === '--') break;
    if (!arg.startsWith('--') || arg.includes('=') || !takesValue.has(arg.slice(2))) continue;
    const next = args[index + 1];
    if (next === undefined || next.startsWith('--')) return `${arg} needs a value`;
  }
  const ranges: Array<[string, { min: number; max?: number }]> = [...Object.entries(NUMBER_RANGES), ['metricsPort', NUMBER_RANGES.port]];
  for (const [field, range] of ranges) {
    const value = argv[field];
    if (value !== undefined && !fitsRange(value, range)) return `${settingName(field, args)} ${numberRequirement(range)}`;
  }
  return true;
}
