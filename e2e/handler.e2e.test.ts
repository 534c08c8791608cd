/**
 * The handler's journey in a real browser against the built app, with mail going through a real
 * SMTP server on loopback: a delivery arrives, the handler signs in by the emailed link, finds it
 * in the inbox, reads it, downloads a file, and the sender's receipt arrives.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Browser } from 'playwright-core';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { bufferSource, sendDelivery, waitForFinalState } from '@/lib/uploads/client';
import { chromiumMissing, launchChromium } from './chromium';

const HANDLER = 'handlaggare@region.example';
const SENDER = 'avsandare@vardcentral.example';
const SCREENSHOTS = process.env.INKAST_SCREENSHOT_DIR ?? '/tmp';

const skip = chromiumMissing();

describe('the handler in Chromium', { skip }, () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let browser: Browser;

  before(async () => {
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: HANDLER, SMTP_URL: smtp.url, MAIL_FROM: 'Inkast <inkast@region.example>' } });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
    await smtp?.stop();
  });

  test('signs in by email link, reads a delivery and downloads a file; the sender gets a receipt', { timeout: 180_000 }, async () => {
    const referral = crypto.randomBytes(3 * 1024 * 1024 + 123);
    const labResults = Buffer.from('Hb 134 g/L\nCRP <5 mg/L\n');
    const subject = 'Remiss: Maria Svensson, röntgen';
    const message = 'Hej!\n\nHär kommer remissen.\n<b>Inte fetstil</b> och https://example.org/inte-en-länk\n\nMvh Vårdcentralen';
    const { delivery } = await sendDelivery(app.url, {
      slug: app.slug,
      senderEmail: SENDER,
      subject,
      message,
      files: [bufferSource('remiss röntgen.pdf', referral, 'application/pdf'), bufferSource('labbsvar.txt', labResults, 'text/plain')],
    });
    assert.equal((await waitForFinalState(app.url, delivery)).state, 'delivered');
    const notification = await smtp.nextMailTo(HANDLER, 30_000);
    assert.ok(notification.text?.includes(`/inbox/deliveries/${delivery.deliveryId}`), notification.text);
    assert.ok(!notification.text?.includes(subject), 'the notification carries no content');

    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();

    // Signed out, the inbox sends the handler to sign in; the emailed link brings them back.
    await page.goto(`${app.url}/inbox`);
    await page.waitForURL((url) => url.pathname === '/signin');
    await page.getByLabel('E-postadress').fill(HANDLER);
    await page.getByRole('button', { name: 'Skicka inloggningslänk' }).click();
    await page.goto(await smtp.nextLinkTo(HANDLER, 30_000));
    await page.waitForURL((url) => url.pathname === '/inbox');

    await page.getByRole('heading', { level: 1, name: 'Inkorg' }).waitFor();
    assert.match(await page.getByTestId('signed-in-user').innerText(), new RegExp(HANDLER));
    assert.equal(await page.getByTestId('new-count').innerText(), 'Nya: 1');
    const row = page.getByTestId('delivery-row');
    assert.equal(await row.count(), 1);
    assert.equal(await row.getAttribute('data-state'), 'new');
    const rowText = await row.innerText();
    for (const expected of [subject, delivery.reference, SENDER, 'Ej verifierad', 'Ny', 'Ingen ännu']) {
      assert.ok(rowText.includes(expected), `the row shows ${expected}: ${rowText}`);
    }
    await page.screenshot({ path: `${SCREENSHOTS}/inkast-handler-inbox.png`, fullPage: true });

    await row.getByRole('link', { name: subject }).click();
    await page.waitForURL((url) => url.pathname === `/inbox/deliveries/${delivery.deliveryId}`);
    assert.equal(await page.getByTestId('delivery-subject').innerText(), subject);
    // The message is text: line breaks kept, markup shown as typed, no address turned into a link.
    const shown = page.getByTestId('delivery-message');
    assert.equal(await shown.evaluate((el) => el.textContent), message);
    assert.equal(await shown.locator('a, b').count(), 0);
    const files = page.getByTestId('delivery-file');
    assert.equal(await files.count(), 2);
    const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
    assert.equal(await files.nth(0).getByTestId('sha256').innerText(), sha256(referral));
    assert.equal(await files.nth(1).getByTestId('sha256').innerText(), sha256(labResults));
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url });
    await files.nth(0).getByRole('button', { name: 'Kopiera SHA-256 för remiss röntgen.pdf' }).click();
    await files.nth(0).getByRole('status').filter({ hasText: 'kopierad' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), sha256(referral));

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Hämta remiss röntgen.pdf' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'remiss röntgen.pdf');
    assert.ok(fs.readFileSync(await download.path()).equals(referral), 'the downloaded bytes are the ones sent');

    const receipt = await smtp.nextMailTo(SENDER, 30_000);
    assert.ok(receipt.text?.includes(delivery.reference), receipt.text);
    assert.match(receipt.subject ?? '', /Kvitto/);
    // The receipt shows the digest's first 16 digits in groups of four, for reading aloud over the phone.
    assert.ok(receipt.text!.includes(sha256(referral).slice(0, 16).replace(/(.{4})(?=.)/g, '$1 ')), receipt.text);
    assert.ok(!receipt.text!.includes('remiss röntgen.pdf') && !receipt.text!.includes(subject), 'no content in the receipt');

    // The download is on record: on the delivery page, and in the inbox, where it is no longer new.
    await page.reload();
    assert.match(await files.nth(0).getByRole('table').innerText(), new RegExp(HANDLER));
    await page.screenshot({ path: `${SCREENSHOTS}/inkast-handler-delivery.png`, fullPage: true });
    await page.goto(`${app.url}/inbox`);
    assert.equal(await row.getAttribute('data-state'), 'opened');
    assert.equal(await page.getByTestId('new-count').count(), 0);
    assert.match(await row.innerText(), /Administrator/, 'downloaded by the handler');

    // In English through the language switch; the administrator also sees the outgoing mail.
    await page.getByRole('button', { name: 'In English' }).click();
    await page.getByRole('link', { name: 'Outgoing email' }).click();
    await page.getByRole('heading', { level: 1, name: 'Outgoing email' }).waitFor();
    const entries = page.getByTestId('outbox-entry');
    assert.ok((await entries.count()) >= 3, 'notification, sign-in link and receipt');
    assert.match(await entries.filter({ hasText: 'sign-in-link' }).first().innerText(), /Sent/);
    await page.screenshot({ path: `${SCREENSHOTS}/inkast-handler-outbox.png`, fullPage: true });

    // Someone else's delivery, or none at all: the same 404.
    const missing = await page.goto(`${app.url}/inbox/deliveries/${crypto.randomUUID()}`);
    assert.equal(missing?.status(), 404);
    await page.goto(`${app.url}/inbox`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((url) => url.pathname === '/signin');
    await page.goto(`${app.url}/inbox`);
    await page.waitForURL((url) => url.pathname === '/signin', { timeout: 5_000 });
    await context.close();
  });
});
