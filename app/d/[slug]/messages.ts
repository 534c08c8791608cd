/** Puts the upload pipeline's problems and the server's reasons into the page's language. */
import { t, type Locale, type PlainMessageKey } from '@/lib/i18n';
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
  'sender-verification-required': 'error.senderVerification',
  'too-many-files': 'error.tooManyFiles',
};

export function problemMessage(locale: Locale, problem: Problem): string {
  switch (problem.kind) {
    case 'network':
      return t(locale, 'error.network');
    case 'fileRead':
      return t(locale, 'upload.error.fileRead');
    case 'worker':
      return t(locale, 'upload.error.worker');
    case 'http': {
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
};

export function rejectReasonMessage(locale: Locale, reason: string | null | undefined): string {
  return t(locale, (reason && reasonKeys[reason]) || 'result.reason.unknown');
}
