/**
 * The one logger (pino, JSON lines on stdout). Every module logs through `logger('<module>')`, so
 * every line passes the same redaction (./redact): no token, code, cookie, key, subject,
 * message text, file name or body ever reaches a log line, whatever a caller passes.
 */
import pino, { type DestinationStream, type Level, type Logger, type LevelWithSilent } from 'pino';
import { config } from '@/lib/config';
import { REDACTED, sanitize, scrubString, serializeError, serializeRequest } from './redact';

export { REDACTED, isRedactedKey, sanitize, scrubString, scrubUrl, serializeError, serializeRequest } from './redact';
export type { Logger } from 'pino';

/**
 * pino's own path redaction, on top of `sanitize` (which already replaces these by name at any
 * depth): the places secrets sit in the objects people tend to log.
 */
export const REDACT_PATHS = [
  'token',
  'code',
  'cookie',
  'authorization',
  'password',
  'secret',
  'key',
  '*.token',
  '*.code',
  '*.cookie',
  '*.authorization',
  '*.password',
  '*.secret',
  '*.key',
  '*.privateKey',
  '*.senderToken',
  'headers.cookie',
  'headers.authorization',
  'headers["set-cookie"]',
  'headers["inkast-sender-token"]',
  '*.headers.cookie',
  '*.headers.authorization',
  '*.headers["set-cookie"]',
  '*.headers["inkast-sender-token"]',
];

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where lines go (tests capture them); stdout by default. */
  destination?: DestinationStream;
}

function defaultLevel(): LevelWithSilent {
  try {
    return config().logLevel;
  } catch {
    return 'info';
  }
}

function hasError(v: unknown): Error | undefined {
  if (v instanceof Error) return v;
  if (v && typeof v === 'object') {
    const e = (v as { err?: unknown; error?: unknown }).err ?? (v as { error?: unknown }).error;
    if (e instanceof Error) return e;
  }
  return undefined;
}

const passError = (v: unknown) => (v instanceof Error ? serializeError(v) : v);
const passRequest = (v: unknown) =>
  v && typeof v === 'object' && typeof (v as { method?: unknown }).method === 'string' && typeof (v as { url?: unknown }).url === 'string'
    ? serializeRequest(v as { method: string; url: string })
    : v;

/** A logger with Inkast's redaction; `logger()` is the process's one, made by this. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      name: 'inkast',
      level: opts.level ?? defaultLevel(),
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      // `formatters.log` (sanitize) runs first and shapes err and req already; these only keep
      // pino's defaults from touching them again.
      serializers: { err: passError, error: passError, req: passRequest },
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => sanitize(obj) as Record<string, unknown>,
      },
      hooks: {
        // The message string and interpolation arguments are scrubbed too, and an error logged
        // without a message does not lend pino its raw message.
        logMethod(args: unknown[], method: (...a: unknown[]) => void) {
          const out = args.map((a, i) => (typeof a === 'string' ? scrubString(a) : i === 0 ? a : sanitize(a)));
          const err = hasError(out[0]);
          if (err && typeof out[1] !== 'string') out.splice(1, 0, scrubString(err.message || err.name));
          method.apply(this, out);
        },
      },
    },
    opts.destination,
  );
}

const g = globalThis as typeof globalThis & { __inkastLogger?: Logger };

/** The process's logger, or a child of it for one module (`logger('jobs')`). */
export function logger(module?: string): Logger {
  // On globalThis: Next evaluates modules twice per process, the logger must exist once.
  g.__inkastLogger ??= createLogger();
  return module ? g.__inkastLogger.child({ module }) : g.__inkastLogger;
}

export type { Level };
