/**
 * Malware scanning through the built app with a real clamd (scripts/clamd-start.sh; CI starts
 * it) and a real SMTP server on loopback:
 *  - with CLAMAV_* set, a delivery holding the EICAR test file is rejected ('infected') and
 *    quarantined: its files are never downloadable, its ciphertext stays in storage, the sender
 *    and the administrator are mailed, no handler is notified, the audit log records it;
 *  - a clean delivery passes;
 *  - clamd unreachable: the delivery is held (never delivered unscanned);
 *  - without CLAMAV_*, nothing is scanned and nothing says it was.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { appDatabase, appObjectStore } from '@/lib/testing/inspect';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { signInLinkFrom, signInWithEmail, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { bufferSource, deliveryStatus, sendDelivery, waitForFinalState } from '@/lib/uploads/client';
import { clamdTestTarget, eicar } from './testing';

const ADMIN = 'admin@example.org';
const SENDER = 'sender@example.org';
const clamd = await clamdTestTarget();

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function nextSignInLink(smtp: MailCatcher, address: string): Promise<string> {
  for (;;) {
    try {
      return signInLinkFrom(await smtp.nextMailTo(address, 30_000));
    } catch (err) {
      if (/no mail to/.test((err as Error).message)) throw err;
    }
  }
}

const text = (m: { subject?: string; text?: string | false }) => `${m.subject ?? ''}\n${m.text || ''}`;

describe('malware scanning with clamd', { skip: clamd ? false : 'no clamd answers (run scripts/clamd-start.sh)' }, () => {
  let smtp: MailCatcher;
  let app: RunningApp;

  before(async () => {
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, ...clamd!.env } });
  });

  after(async () => {
    await app?.kill();
    await smtp?.stop();
    if (app) fs.rmSync(app.dataDir, { recursive: true, force: true });
  });

  test('EICAR is rejected and quarantined; the sender and the administrator are told; a clean file passes', { timeout: 120_000 }, async () => {
    const infected = await sendDelivery(app.url, {
      slug: app.slug,
      senderEmail: SENDER,
      subject: 'Remiss',
      message: 'Se bilaga',
      locale: 'en',
      files: [bufferSource('clean.txt', Buffer.from('nothing to see')), bufferSource('invoice.pdf', eicar(), 'application/pdf')],
    });
    const status = await waitForFinalState(app.url, infected.delivery);
    assert.equal(status.state, 'rejected');
    assert.equal(status.rejectReason, 'infected');
    assert.ok(status.files.every((f) => f.state === 'rejected'), JSON.stringify(status.files));

    const senderMail = await smtp.nextMailTo(SENDER, 30_000);
    assert.match(text(senderMail), /could not be accepted/);
    assert.match(text(senderMail), /malware scan found malicious code/);
    const adminMail = await (async () => {
      for (;;) {
        const m = await smtp.nextMailTo(ADMIN, 30_000);
        if (/stoppad|stopped/.test(m.subject ?? '')) return m;
      }
    })();
    assert.match(text(adminMail), new RegExp(infected.delivery.reference));
    assert.match(text(adminMail), /Eicar-Test-Signature/);
    assert.match(text(adminMail), new RegExp(SENDER));
    assert.ok(!text(adminMail).includes('invoice.pdf') && !text(adminMail).includes('Remiss'), 'no content in the notice');

    const clean = await sendDelivery(app.url, {
      slug: app.slug,
      senderEmail: SENDER,
      subject: 'Clean',
      message: '',
      files: [bufferSource('report.txt', Buffer.from('all well\n'.repeat(10_000)))],
    });
    assert.equal((await waitForFinalState(app.url, clean.delivery)).state, 'delivered');
    const notification = await smtp.nextMailTo(ADMIN, 30_000);
    assert.ok(text(notification).includes(`/inbox/deliveries/${clean.delivery.deliveryId}`), 'the clean delivery is announced');
    // Nobody was ever told of the infected one as a delivery.
    assert.ok(!smtp.received.some((m) => text(m).includes(`/inbox/deliveries/${infected.delivery.deliveryId}`)));

    // The handler cannot download anything of it.
    const cookie = await signInWithEmail(app.url, ADMIN, () => nextSignInLink(smtp, ADMIN));
    const page = await fetch(`${app.url}/inbox/deliveries/${infected.delivery.deliveryId}`, { headers: { cookie } });
    const html = page.status === 200 ? await page.text() : '';
    assert.ok(!/\/api\/files\//.test(html), 'no download link for a quarantined delivery');

    await app.stop();
    const q = await appDatabase(app);
    try {
      const files = (
        await q.query<{ id: string; upload_id: string; state: string; ciphertext_size: string }>(
          `SELECT id, upload_id, state, ciphertext_size::text FROM delivery_files WHERE delivery_id = $1`,
          [infected.delivery.deliveryId],
        )
      ).rows;
      assert.equal(files.length, 2);
      assert.ok(files.every((f) => f.state === 'rejected'));
      // Quarantine keeps the ciphertext for the administrators.
      const store = appObjectStore(app);
      for (const f of files) assert.equal(await store.size(f.upload_id), Number(f.ciphertext_size));
      const audit = (await q.query<{ action: string; detail: { signature?: string } }>(`SELECT action, detail FROM audit_log WHERE target = $1`, [`delivery:${infected.delivery.deliveryId}`])).rows;
      assert.ok(audit.some((a) => a.action === 'delivery.quarantined' && /^Eicar-Test-Signature/.test(a.detail.signature ?? '')), JSON.stringify(audit));
    } finally {
      await q.close();
    }
  });

  test('the inbox never lists a quarantined delivery', async () => {
    const smtp2 = await startMailCatcher();
    const app2 = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp2.url, ...clamd!.env } });
    try {
      const { delivery } = await sendDelivery(app2.url, { slug: app2.slug, senderEmail: SENDER, subject: 's', message: 'm', files: [bufferSource('e.com', eicar())] });
      assert.equal((await waitForFinalState(app2.url, delivery)).rejectReason, 'infected');
      const cookie = await signInWithEmail(app2.url, ADMIN, () => nextSignInLink(smtp2, ADMIN));
      const inbox = await (await fetch(`${app2.url}/inbox`, { headers: { cookie } })).text();
      assert.ok(!inbox.includes(delivery.reference), 'listed in the inbox');
      assert.equal((await fetch(`${app2.url}/inbox/deliveries/${delivery.deliveryId}`, { headers: { cookie } })).status, 404);
    } finally {
      await app2.kill();
      await smtp2.stop();
    }
  });

  test('clamd unreachable: the delivery is held, never delivered unscanned', { timeout: 60_000 }, async () => {
    const held = await startApp({ env: { CLAMAV_HOST: '127.0.0.1', CLAMAV_PORT: String(await closedPort()) } });
    try {
      const { delivery } = await sendDelivery(held.url, { slug: held.slug, senderEmail: SENDER, subject: 's', message: 'm', files: [bufferSource('a.txt', Buffer.from('a'))] });
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal((await deliveryStatus(held.url, delivery)).state, 'submitted');
    } finally {
      await held.kill();
      fs.rmSync(held.dataDir, { recursive: true, force: true });
    }
  });
});

describe('without CLAMAV_*', () => {
  test('nothing is scanned and nothing claims it was', { timeout: 60_000 }, async () => {
    const smtp = await startMailCatcher();
    const app = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, INKAST_LOG_LEVEL: 'debug' } });
    try {
      const { delivery } = await sendDelivery(app.url, { slug: app.slug, senderEmail: SENDER, subject: 's', message: 'm', files: [bufferSource('e.txt', eicar())] });
      assert.equal((await waitForFinalState(app.url, delivery)).state, 'delivered');
      const notification = await smtp.nextMailTo(ADMIN, 30_000);
      const cookie = await signInWithEmail(app.url, ADMIN, () => nextSignInLink(smtp, ADMIN));
      const page = await (await fetch(`${app.url}/inbox/deliveries/${delivery.deliveryId}`, { headers: { cookie } })).text();
      const filedrop = await (await fetch(`${app.url}/d/${app.slug}`)).text();
      for (const [what, s] of [
        ['notification', text(notification)],
        ['delivery page', page],
        ['filedrop page', filedrop],
        ['log', app.output()],
      ]) {
        assert.ok(!/virus|malware|skadlig|clam|scann|skann/i.test(s), `${what} mentions scanning`);
      }
    } finally {
      await app.kill();
      await smtp.stop();
      fs.rmSync(app.dataDir, { recursive: true, force: true });
    }
  });
});
