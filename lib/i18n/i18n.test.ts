import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, resolveLocale, t } from './index';

test('?lang= wins over the cookie, then Swedish', () => {
  assert.equal(resolveLocale('en', 'sv'), 'en');
  assert.equal(resolveLocale(['en', 'sv'], undefined), 'en');
  assert.equal(resolveLocale('de', 'en'), 'en');
  assert.equal(resolveLocale(undefined, 'fr'), 'sv');
});

test('t fills placeholders, numbers in the locale’s style', () => {
  assert.equal(t('sv', 'filedrop.title', { mailbox: 'Remisser' }), 'Skicka filer till Remisser');
  assert.equal(t('en', 'form.error.tooManyFiles', { count: 1200, max: 1000 }), 'You have chosen 1,200 files. The limit is 1,000.');
  assert.equal(t('sv', 'form.error.tooManyFiles', { count: 1200, max: 1000 }), 'Du har valt 1\u00a0200 filer. Gränsen är 1\u00a0000.');
});

test('sizes are decimal, as file managers show them', () => {
  assert.equal(formatBytes('en', 5_000_000_000), '5 GB');
  assert.equal(formatBytes('sv', 1_500_000), '1,5 MB');
  assert.equal(formatBytes('en', 11), '11 bytes');
});
