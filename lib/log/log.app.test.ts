/**
 * What the running app prints, stdout and stderr, at the most verbose log level, across a whole
 * sender's and handler's journey with known markers (built app, real SMTP server on loopback):
 * the subject, the message, a file name and the file's content, the sender token, the sign-in
 * token, the session cookie, the master key and the mailbox key never appear in it, nor do they
 * on the error paths (bad tokens, malformed and cross-origin requests, a rejected delivery).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { sessionCookieFrom, signInLinkFrom, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { bufferSource, openDelivery, prepareFile, sendDelivery, submit, uploadFile, waitForFinalState } from '@/lib/uploads/client';

const HANDLER = 'handler@example.org';
const SENDER = 'sender@example.org';
const NO_RATE_LIMITS = Object.fromEntries(
  ['DELIVERIES_PER_IP', 'UPLOAD_BYTES_PER_IP', 'CODES_PER_ADDRESS', 'CODES_PER_IP', 'CODE_CHECKS_PER_IP', 'SIGN_IN_PER_ADDRESS', 'SIGN_IN_PER_IP'].map(
    (n) => [`INKAST_RATE_${n}`, 'off'],
  ),
);

describe('logs of a full journey hold no secret and no content', () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  const id = crypto.randomBytes(5).toString('hex');
  const markers = {
    subject: `SUBJECT-MARKER-${id}`,
    message: `MESSAGE-MARKER-${id}`,
    fileName: `name-marker-${id}.pdf`,
    content: `CONTENT-MARKER-${id}`,
  };
  const secrets: Record<string, string> = {};

  before(async () => {
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_LOG_LEVEL: 'trace', INKAST_ADMIN_EMAIL: HANDLER, SMTP_URL: smtp.url, ...NO_RATE_LIMITS } });
  });

  after(async () => {
    await app?.kill();
    await smtp?.stop();
    if (app) fs.rmSync(app.dataDir, { recursive: true, force: true });
  });

  const nextMail = async (to: string, match: (text: string) => boolean) => {
    for (;;) {
      const mail = await smtp.nextMailTo(to, 30_000);
      if (match(`${mail.subject}\n${mail.text}`)) return mail;
    }
  };

  test('the sender: a delivery with the markers, and the error paths', { timeout: 120_000 }, async () => {
    const content = Buffer.concat([Buffer.from(`${markers.content}\n`), crypto.randomBytes(2 * 1024 * 1024), Buffer.from(markers.content)]);
    const { delivery } = await sendDelivery(app.url, {
      slug: app.slug,
      senderEmail: SENDER,
      subject: markers.subject,
      message: markers.message,
      files: [bufferSource(markers.fileName, content, 'application/pdf'), bufferSource(`second-${markers.fileName}`, Buffer.from(markers.content))],
    });
    secrets.senderToken = delivery.senderToken;
    secrets.deliveryId = delivery.deliveryId;
    assert.equal((await waitForFinalState(app.url, delivery)).state, 'delivered');

    // Error paths, with the markers and the token where a careless log line would print them.
    const bad = await openDelivery(app.url, { slug: app.slug, senderEmail: SENDER });
    secrets.badToken = bad.senderToken;
    const file = await prepareFile(bad, bufferSource(markers.fileName, Buffer.from(markers.content)));
    await uploadFile(app.url, bad, file);
    // A manifest that names another file: the verifier rejects the delivery.
    await submit(app.url, bad, { subject: markers.subject, message: markers.message }, [
      { ...file, source: bufferSource(`other-${markers.fileName}`, Buffer.from(markers.content)) },
    ]);
    assert.equal((await waitForFinalState(app.url, bad)).state, 'rejected');
    const requests: [string, RequestInit][] = [
      [`/api/deliveries`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"slug":"${markers.subject}","senderEmail":"${markers.message}"` }],
      [`/api/deliveries`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: JSON.stringify({ subject: markers.subject }) }],
      [`/api/deliveries/${delivery.deliveryId}`, { headers: { 'Inkast-Sender-Token': `${delivery.senderToken}x` } }],
      [`/api/deliveries/${delivery.deliveryId}/submit`, { method: 'POST', headers: { 'content-type': 'application/json', 'Inkast-Sender-Token': delivery.senderToken }, body: JSON.stringify({ manifest: markers.message }) }],
      [`/api/tus`, { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '10', 'Upload-Metadata': `filename ${Buffer.from(markers.fileName).toString('base64')}`, 'Inkast-Sender-Token': delivery.senderToken } }],
      [`/api/tus/${'0'.repeat(32)}`, { method: 'PATCH', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Offset': '0', 'Content-Type': 'application/offset+octet-stream', 'Inkast-Sender-Token': delivery.senderToken }, body: markers.content }],
      [`/api/senders/code`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ slug: app.slug, email: SENDER }) }],
    ];
    for (const [p, init] of requests) {
      const res = await fetch(`${app.url}${p}`, init);
      assert.ok(res.status < 500, `${p}: ${res.status}`);
    }
  });

  test('the handler: signs in by the emailed link, reads the delivery, downloads a file, signs out', { timeout: 120_000 }, async () => {
    const asked = await fetch(`${app.url}/api/auth/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: HANDLER, next: `/inbox/deliveries/${secrets.deliveryId}` }),
      redirect: 'manual',
    });
    assert.equal(asked.status, 303);
    const link = signInLinkFrom(await nextMail(HANDLER, (t) => t.includes('/auth/verify?')));
    secrets.signInToken = new URL(link).searchParams.get('token')!;
    // A link checker's HEAD, then a wrong token, then the real one.
    await fetch(link, { method: 'HEAD', redirect: 'manual' });
    await fetch(`${app.url}/auth/verify?token=${secrets.signInToken.slice(0, -2)}xx`, { redirect: 'manual' });
    const verified = await fetch(link, { redirect: 'manual' });
    const cookie = sessionCookieFrom(verified);
    assert.ok(cookie, `no session: ${verified.status}`);
    secrets.session = cookie.split('=').slice(1).join('=');
    // The same link again: refused, and logged as such without the token.
    await fetch(link, { redirect: 'manual' });

    const page = await fetch(`${app.url}/inbox/deliveries/${secrets.deliveryId}`, { headers: { cookie } });
    const html = await page.text();
    assert.ok(html.includes(markers.subject) && html.includes(markers.message) && html.includes(markers.fileName), 'the page shows the delivery');
    assert.equal((await fetch(`${app.url}/inbox`, { headers: { cookie } })).status, 200);
    const fileIds = [...new Set([...html.matchAll(/\/api\/files\/([0-9a-f-]{36})/g)].map((m) => m[1]))];
    assert.equal(fileIds.length, 2);
    for (const fileId of fileIds) {
      const res: Response = await fetch(`${app.url}/api/files/${fileId}`, { headers: { cookie } });
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).includes(markers.content));
      // A range request and an unsatisfiable one too.
      await (await fetch(`${app.url}/api/files/${fileId}`, { headers: { cookie, range: 'bytes=0-9' } })).arrayBuffer();
      await (await fetch(`${app.url}/api/files/${fileId}`, { headers: { cookie, range: 'bytes=999999999-' } })).arrayBuffer();
    }
    await nextMail(SENDER, (t) => /receipt|kvitto/i.test(t));
    await fetch(`${app.url}/api/files/${fileIds[0]}`, { headers: { cookie: 'inkast_session=Fe26.2**forged*x' } });
    const out = await fetch(`${app.url}/api/auth/sign-out`, { method: 'POST', headers: { cookie, origin: app.url }, redirect: 'manual' });
    assert.equal(out.status, 303);
  });

  test('the captured output holds none of them', async (t) => {
    // Let the worker finish what it logs (mail, receipts), then stop the app so every line is flushed.
    await new Promise((r) => setTimeout(r, 1500));
    await app.stop();
    secrets.masterKey = fs.readFileSync(path.join(app.dataDir, 'master.key'), 'utf8').trim();
    const output = app.output();
    const lines = output.split('\n').filter((l) => l.startsWith('{'));
    t.diagnostic(`${output.length} characters, ${lines.length} JSON log lines: ${[...new Set(lines.map((l) => (JSON.parse(l) as { msg?: string }).msg))].join(' | ')}`);
    assert.ok(lines.length >= 5, 'the app logged at all');
    for (const line of lines) JSON.parse(line);
    const forbidden: Record<string, string> = {
      ...markers,
      fileNameStem: markers.fileName.replace(/\.pdf$/, ''),
      senderToken: secrets.senderToken,
      badToken: secrets.badToken,
      signInToken: secrets.signInToken,
      session: secrets.session,
      sessionSeal: secrets.session.slice(10, 60),
      masterKey: secrets.masterKey,
      pgpKey: '-----BEGIN PGP PRIVATE KEY BLOCK-----',
      pgpMessage: '-----BEGIN PGP MESSAGE-----',
    };
    for (const [name, marker] of Object.entries(forbidden)) {
      const hit = output.split('\n').find((l) => l.includes(marker));
      assert.equal(hit, undefined, `${name} appears in the app's output: ${hit}`);
      // Encoded forms too: base64 and percent-encoding of the markers.
      for (const encoded of [Buffer.from(marker).toString('base64'), encodeURIComponent(marker)]) {
        if (encoded !== marker && encoded.length >= 12) assert.ok(!output.includes(encoded), `${name} appears encoded`);
      }
    }
  });
});
