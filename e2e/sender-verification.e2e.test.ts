/**
 * The sender's journey to a mailbox that accepts only confirmed senders, in Chromium against the
 * built app, with the code going through a real SMTP server: the form asks for the code before
 * anything is created or uploaded, a wrong code is refused in words, going back keeps the form,
 * and the right code sends the delivery, recorded as verified.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { createPostgresDatabase, postgresAdminUrl } from '@/lib/testing/targets';
import { chromiumMissing, launchChromium } from './chromium';

const SENDER = 'lakare@vardcentral.example';

// The policy is set in the database from here: PGlite is the app's own, so this needs PostgreSQL.
const chromium = chromiumMissing();
const admin = chromium ? undefined : await postgresAdminUrl();
const skip = chromium || (admin ? false : 'needs a real PostgreSQL to set the mailbox policy');

function codeIn(text: string | undefined): string {
  const code = /^(?:Kod|Code): (\d{6})$/m.exec(text ?? '')?.[1];
  assert.ok(code, `a code in: ${text}`);
  return code;
}

describe('a confirmed sender in Chromium', { skip }, () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let browser: Browser;
  let sql: pg.Client;
  let dir: string;

  before(async () => {
    const databaseUrl = await createPostgresDatabase(admin!);
    smtp = await startMailCatcher();
    app = await startApp({ env: { DATABASE_URL: databaseUrl, SMTP_URL: smtp.url, INKAST_ADMIN_EMAIL: 'admin@example.org' } });
    sql = new pg.Client({ connectionString: databaseUrl });
    await sql.connect();
    await sql.query(`UPDATE mailboxes SET require_verified_sender = true WHERE filedrop_slug = $1`, [app.slug]);
    browser = await launchChromium();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-e2e-verify-'));
  });

  after(async () => {
    await browser?.close();
    await sql?.end();
    await app?.stop();
    await smtp?.stop();
    for (const d of [dir, app?.dataDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  test('asks for the code before uploading, refuses a wrong one, then sends as verified', { timeout: 180_000 }, async () => {
    const file = path.join(dir, 'remiss.pdf');
    fs.writeFileSync(file, crypto.randomBytes(200_000));
    const context = await browser.newContext();
    const page = await context.newPage();
    const early: string[] = [];
    page.on('request', (req) => {
      const p = new URL(req.url()).pathname;
      if (req.method() === 'POST' && (p === '/api/deliveries' || p.startsWith('/api/tus'))) early.push(p);
    });

    await page.goto(`${app.url}/d/${app.slug}?lang=en`);
    await page.getByText('The recipient only accepts files from confirmed senders.').waitFor();
    await page.getByLabel('Your email address').fill(SENDER);
    await page.getByLabel('Subject').fill('Referral');
    await page.locator('#files').setInputFiles(file);
    await page.getByRole('button', { name: 'Encrypt and send' }).click();

    // The code step, focused, before anything is created or uploaded.
    const heading = page.getByRole('heading', { name: 'Confirm your email address' });
    await heading.waitFor();
    assert.ok(await heading.evaluate((el) => el === document.activeElement), 'the step’s heading has focus');
    assert.deepEqual(early, []);
    const first = codeIn((await smtp.nextMailTo(SENDER, 30_000)).text);

    // Going back keeps what was typed and chosen; sending again mails a new code.
    await page.getByRole('button', { name: 'Change email address' }).click();
    assert.equal(await page.getByLabel('Subject').inputValue(), 'Referral');
    await page.getByRole('button', { name: 'Remove remiss.pdf' }).waitFor();
    await page.getByRole('button', { name: 'Encrypt and send' }).click();
    await heading.waitFor();
    const code = codeIn((await smtp.nextMailTo(SENDER, 30_000)).text);
    assert.notEqual(code, first);

    const input = page.getByLabel('Code from the email');
    await input.fill(String((Number(code) + 1) % 1_000_000).padStart(6, '0'));
    await page.getByRole('button', { name: 'Confirm and send' }).click();
    const error = page.locator('#sender-code-error');
    await error.waitFor();
    assert.equal(await error.innerText(), 'The code is not right. Check the latest code in the email. Tries left: 4.');
    assert.match(await page.getByTestId('announcer').innerText(), /The code is not right/, 'and it is announced');
    assert.equal(await input.getAttribute('aria-invalid'), 'true');
    assert.match((await input.getAttribute('aria-describedby')) ?? '', /sender-code-error/);
    assert.deepEqual(early, []);

    await input.fill(code);
    await page.getByRole('button', { name: 'Confirm and send' }).click();
    const state = page.locator('[data-testid=delivery-state][data-state=delivered], [data-testid=delivery-state][data-state=rejected]');
    await state.waitFor({ timeout: 120_000 });
    assert.equal(await state.getAttribute('data-state'), 'delivered');
    const row = (await sql.query(`SELECT sender_email, sender_verified FROM deliveries`)).rows;
    assert.deepEqual(row, [{ sender_email: SENDER, sender_verified: true }]);

    // Within the hour the confirmed address needs no new code, also after a reload.
    await page.goto(`${app.url}/d/${app.slug}`);
    await page.getByLabel('Your email address').fill(SENDER);
    await page.getByLabel('Subject').fill('Second');
    await page.locator('#files').setInputFiles(file);
    await page.getByRole('button', { name: 'Encrypt and send' }).click();
    await state.waitFor({ timeout: 120_000 });
    assert.equal(smtp.mailsTo(SENDER).filter((m) => /code/i.test(m.subject ?? '')).length, 2, 'no third code');
    await context.close();
  });
});
