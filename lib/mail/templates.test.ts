import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Locale } from '@/lib/i18n';
import { renderMail, type MailTemplate, type MailTemplates } from './templates';

const ctx = { publicUrl: 'https://inkast.example.se' };
const MARKER = 'HEALTHDATA-MARKER';
const sentAt = new Date('2025-03-04T13:05:00Z');

// A Record over every template: adding a template without adding it here does not compile.
const examples: { [T in MailTemplate]: MailTemplates[T] } = {
  'delivery-rejected': { reference: 'INK-7K3Q-2M', sentAt, reason: 'file-corrupt' },
  'delivery-notification': {
    deliveryId: '5b0c7f7e-2f1e-4a39-9a55-0f2b8f0e1c11',
    mailboxName: 'Vårdcentralen <Norra> & "Söder"',
    senderEmail: 'lakare@region.example.se',
    senderVerified: true,
    fileCount: 3,
    totalBytes: 1_534_000_000,
  },
  'download-receipt': {
    reference: 'INK-7K3Q-2M',
    sentAt,
    fileNumber: 2,
    fileBytes: 1_523_456,
    sha256: 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855',
    downloadedBy: 'Anna Andersson',
    downloadedAt: new Date('2025-03-05T08:30:00Z'),
  },
  'sign-in-link': { link: 'https://inkast.example.se/auth/callback?token=abc&x=1', expiresAt: sentAt },
  'user-invited': { email: 'anna@region.example.se', filedropUrl: 'https://inkast.example.se/d/7fXq2Ls9kPzR4mWb' },
  'sender-code': { code: '042917', expiresAt: sentAt },
};
const locales: Locale[] = ['sv', 'en'];
const templates = Object.keys(examples) as MailTemplate[];

test('the types refuse subject, message text and file names', () => {
  const params = examples['delivery-rejected'];
  // Each line below must fail to compile (tsc checks the expectations; at run time they are inert).
  // @ts-expect-error a subject never goes into an email
  renderMail('delivery-rejected', 'sv', { ...params, subject: MARKER }, ctx);
  // @ts-expect-error nor a file name
  renderMail('download-receipt', 'en', { ...examples['download-receipt'], fileName: MARKER }, ctx);
  // @ts-expect-error nor message text
  renderMail('delivery-notification', 'sv', { ...examples['delivery-notification'], message: MARKER }, ctx);
  // @ts-expect-error nor the list of files
  renderMail('delivery-notification', 'en', { ...examples['delivery-notification'], files: [{ name: MARKER }] }, ctx);
  const fromDecryptedManifest = { ...params, subject: MARKER };
  // @ts-expect-error not even through a variable, where excess-property checks do not apply
  renderMail('delivery-rejected', 'sv', fromDecryptedManifest, ctx);
});

for (const template of templates) {
  for (const locale of locales) {
    test(`${template} (${locale}) renders text and escaped HTML without content`, () => {
      // Smuggle content past the types: the template must still not show it.
      const smuggled = {
        ...examples[template],
        subject: MARKER,
        message: MARKER,
        fileName: `${MARKER}.pdf`,
        files: [{ name: `${MARKER}.pdf` }],
      } as unknown as MailTemplates[typeof template];
      const mail = renderMail(template, locale, smuggled, ctx);
      for (const part of [mail.subject, mail.text, mail.html]) {
        assert.ok(!part.includes(MARKER), `${template}/${locale} leaks a marker`);
        assert.doesNotMatch(part, /undefined|NaN|\[object /);
      }
      assert.doesNotMatch(mail.subject, /[\r\n]/);
      assert.match(mail.html, new RegExp(`^<!doctype html><html lang="${locale}">`));
      assert.ok(mail.text.length > 50);
      // Every angle bracket in the HTML belongs to a tag the renderer wrote.
      assert.ok(!mail.html.includes('<Norra>') && !mail.html.includes('<script'));
    });
  }
}

test('delivery-notification: escaped mailbox name, link, verified sender, sizes in both languages', () => {
  const sv = renderMail('delivery-notification', 'sv', examples['delivery-notification'], ctx);
  assert.equal(sv.subject, 'Ny leverans till Vårdcentralen <Norra> & "Söder"');
  assert.ok(sv.html.includes('Vårdcentralen &lt;Norra&gt; &amp; &quot;Söder&quot;'));
  const link = 'https://inkast.example.se/inbox/deliveries/5b0c7f7e-2f1e-4a39-9a55-0f2b8f0e1c11';
  assert.ok(sv.text.includes(link));
  assert.ok(sv.html.includes(`href="${link}"`));
  assert.match(sv.text, /lakare@region\.example\.se \(verifierad e-postadress\)/);
  assert.match(sv.text, /Total storlek: 1,5 GB/);
  const en = renderMail('delivery-notification', 'en', { ...examples['delivery-notification'], senderVerified: false }, ctx);
  assert.match(en.text, /\(email address not verified\)/);
  assert.match(en.text, /Total size: 1\.5 GB/);
});

test('download-receipt shows the SHA-256 prefix only, the exact size and Stockholm time', () => {
  const sv = renderMail('download-receipt', 'sv', examples['download-receipt'], ctx);
  assert.match(sv.text, /SHA-256 \(början\): e3b0 c442 98fc 1c14 …/);
  assert.ok(!sv.text.toLowerCase().includes('9afbf4c8996fb924'), 'only the first 16 digits');
  assert.match(sv.text, /Storlek: 1,5 MB \(1\s523\s456 byte\)/);
  assert.match(sv.text, /Hämtad: 5 mars 2025\D*09:30 CET/);
  const en = renderMail('download-receipt', 'en', examples['download-receipt'], ctx);
  assert.match(en.text, /Size: 1\.5 MB \(1,523,456 bytes\)/);
  assert.match(en.text, /Downloaded by: Anna Andersson/);
  assert.throws(() => renderMail('download-receipt', 'en', { ...examples['download-receipt'], sha256: 'report.pdf' }, ctx));
});

test('delivery-rejected translates the reason code', () => {
  const sv = renderMail('delivery-rejected', 'sv', { ...examples['delivery-rejected'], reason: 'too-large' }, ctx);
  assert.match(sv.text, /Orsak: Leveransen var större än vad brevlådan tar emot\./);
  assert.match(sv.subject, /INK-7K3Q-2M/);
  const en = renderMail('delivery-rejected', 'en', examples['delivery-rejected'], ctx);
  assert.match(en.text, /Reason: A file was damaged or incomplete/);
  assert.match(en.text, /4 March 2025\D*14:05 CET/);
});

test('sign-in-link escapes the URL in the href and refuses non-http links', () => {
  const mail = renderMail('sign-in-link', 'en', examples['sign-in-link'], ctx);
  assert.ok(mail.html.includes('href="https://inkast.example.se/auth/callback?token=abc&amp;x=1"'));
  assert.ok(mail.text.includes('https://inkast.example.se/auth/callback?token=abc&x=1'));
  assert.throws(() => renderMail('sign-in-link', 'sv', { link: 'javascript:alert(1)', expiresAt: sentAt }, ctx));
});

test('user-invited names where to sign in and the filedrop link, in the user’s language', () => {
  const p = examples['user-invited'];
  const sv = renderMail('user-invited', 'sv', p, ctx);
  assert.equal(sv.subject, 'Du har ett konto i Inkast');
  assert.ok(sv.text.includes('https://inkast.example.se/signin'));
  assert.ok(sv.text.includes(p.filedropUrl));
  assert.ok(sv.text.includes(p.email));
  assert.ok(sv.html.includes('href="https://inkast.example.se/signin"'));
  const en = renderMail('user-invited', 'en', p, ctx);
  assert.equal(en.subject, 'You have an Inkast account');
  assert.ok(en.text.includes(p.filedropUrl));
  assert.doesNotMatch(en.text + sv.text, /token=/, 'nothing in it signs anyone in');
  assert.throws(() => renderMail('user-invited', 'en', { ...p, filedropUrl: 'javascript:alert(1)' }, ctx));
});
