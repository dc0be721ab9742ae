/**
 * `sessionserver/framework`: the line-protocol core on its own. Build a server of any
 * line protocol by subclassing LineServer (`cmd_<word>` methods), dropping command files
 * into a folder, and applying plugins. Loads no session, storage or client module.
 */
export { LineServer, DEFAULT_LIMITS, type LineServerLimits, type LineServerOptions } from './line-server.js';
export { Connection } from './connection.js';
export { peerCertificateCommonName, type TlsOptions } from './listener.js';
export { command, accessOf, CommandRegistry, makeEntry, type CommandAccess, type CommandEntry, type CommandHandler, type CommandResult, type CommandSpec } from './command.js';
export { CommandFiles, defineCommand, isCommandFile, type CommandDefinition } from './command-files.js';
export { CommandError, ConfigError, isCommandError } from './errors.js';
export { PluginHost, definePlugin, orderPlugins, SHIPPED_PLUGINS, type Plugin, type PluginContext, type PluginSpec } from './plugin-host.js';
export { CORE_HOOKS, buildHooks, type AnyHook, type CommandOutcome, type CoreHooks, type HookFactories, type HooksOf, type ReloadEvent, type ServerHooks } from './hooks.js';
export { parseRequest, restOfLine, type Request } from '../protocol/request.js';
export { REPLY_TEXTS, replyText, codeOfReply, type ReplyCode } from '../protocol/replies.js';
