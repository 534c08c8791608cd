/** What the filedrop page says when a rate limit or a code check refuses it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { problemMessage } from './messages';

test('a 429 says what was limited and when to try again', () => {
  const create = { kind: 'http', status: 429, code: 'rate-limited' } as const;
  assert.equal(
    problemMessage('en', { ...create, retryAfter: 754 }),
    'Many deliveries have been sent from your network in a short time. Try again in 13 minutes.',
  );
  assert.equal(
    problemMessage('sv', { ...create, retryAfter: 40 }),
    'Många leveranser har skickats från ditt nätverk på kort tid. Försök igen om en minut.',
  );
  assert.equal(
    problemMessage('en', { kind: 'http', status: 429, code: 'tus', retryAfter: 20 * 3600 }),
    'A lot of data has been uploaded from your network in a short time. Try again in 20 hours.',
  );
  assert.equal(
    problemMessage('sv', { ...create, retryAfter: 600 }, 'ratelimit.codes'),
    'Många koder har begärts på kort tid. Försök igen om 10 minuter.',
  );
  assert.equal(
    problemMessage('en', create),
    'Many deliveries have been sent from your network in a short time. Too many attempts right now. Wait a moment and try again.',
    'without Retry-After',
  );
});

test('the server’s verification answers become sentences', () => {
  const http = (status: number, code: string) => ({ kind: 'http', status, code }) as const;
  assert.equal(problemMessage('en', http(401, 'sender-verification-required')), 'The confirmation of your email address has expired. Confirm it again with a new code.');
  assert.equal(problemMessage('en', http(409, 'sender-email-mismatch')), 'You confirmed a different email address from the one you entered. Confirm this address with a code.');
  assert.equal(problemMessage('sv', http(410, 'code-expired')), 'Koden har slutat gälla. Be om en ny kod.');
  assert.equal(problemMessage('sv', http(409, 'code-used')), 'Koden har redan använts. Be om en ny kod.');
  assert.equal(problemMessage('en', http(403, 'code-locked')), 'Too many wrong tries. Ask for a new code.');
});
