/** Puts the upload pipeline's problems and the server's reasons into the page's language. */
import { t, type Locale, type PlainMessageKey } from '@/lib/i18n';
import { retryAfterMessage } from '@/lib/ratelimit/messages';
import type { Problem } from './delivery-upload';

const statusKeys: Record<number, PlainMessageKey> = {
  400: 'error.400',
  401: 'error.401',
  403: 'error.403',
  404: 'error.404',
  409: 'error.409',
  410: 'error.410',
  413: 'error.413',
  415: 'error.415',
  429: 'error.429',
};

const codeKeys: Record<string, PlainMessageKey> = {
  'sender-verification-required': 'verify.error.sessionExpired',
  'sender-email-mismatch': 'verify.error.mismatch',
  'too-many-files': 'error.tooManyFiles',
  'code-expired': 'verify.error.expired',
  'code-used': 'verify.error.used',
  'code-locked': 'verify.error.locked',
};

/**
 * A rate limit's refusal, said for what was refused: `rate-limited` from the API (creating a
 * delivery, or `context` such as codes), `tus` from an upload.
 */
function rateLimitMessage(locale: Locale, problem: { code: string; retryAfter?: number }, context?: PlainMessageKey): string {
  const what: PlainMessageKey = context ?? (problem.code === 'tus' ? 'ratelimit.uploads' : 'ratelimit.deliveries');
  return `${t(locale, what)} ${retryAfterMessage(locale, problem.retryAfter)}`;
}

export function problemMessage(locale: Locale, problem: Problem, rateLimitContext?: PlainMessageKey): string {
  switch (problem.kind) {
    case 'network':
      return t(locale, 'error.network');
    case 'fileRead':
      return t(locale, 'upload.error.fileRead');
    case 'worker':
      return t(locale, 'upload.error.worker');
    case 'http': {
      if (problem.status === 429) return rateLimitMessage(locale, problem, rateLimitContext);
      const key =
        codeKeys[problem.code] ??
        statusKeys[problem.status] ??
        (problem.status >= 500 || problem.status === 408 ? 'error.5xx' : 'error.generic');
      return t(locale, key);
    }
  }
}

const reasonKeys: Record<string, PlainMessageKey> = {
  'manifest-unreadable': 'result.reason.manifestUnreadable',
  'manifest-mismatch': 'result.reason.manifestMismatch',
  'file-corrupt': 'result.reason.fileCorrupt',
  'file-mismatch': 'result.reason.fileMismatch',
  'too-large': 'result.reason.tooLarge',
  infected: 'result.reason.infected',
};

export function rejectReasonMessage(locale: Locale, reason: string | null | undefined): string {
  return t(locale, (reason && reasonKeys[reason]) || 'result.reason.unknown');
}
