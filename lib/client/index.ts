export { SessionClient, type ReconnectOptions, type ServerHello, type SessionClientOptions, type SessionValue } from './session-client.js';
export { SessionPool, type SessionPoolOptions } from './pool.js';
export { isServerError, PoolTimeoutError, SessionConnectionError, SessionLostError, SessionServerError, SessionTimeoutError } from './errors.js';
export { REPLY_TEXTS, codeOfReply, type ReplyCode } from '../protocol/replies.js';
export { SessionServerStore, type ExpressSessionModule, type SessionServerStoreOptions, type StoredSession } from './express-store.js';
export { decodeSessionValues, encodeSessionValues, TYPES_KEY, type ValueEncoding } from './values.js';
