/**
 * The sender's journeys through the filedrop page in a real browser against the built app:
 * encryption in the Web Worker, tus uploads, the manifest, and the server's verification.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { chromiumMissing, launchChromium } from './chromium';

const MiB = 1024 * 1024;

interface LocalFile {
  path: string;
  name: string;
  sha256: string;
}

function randomFile(dir: string, name: string, size: number): LocalFile {
  const bytes = crypto.randomBytes(size);
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return { path: file, name, sha256: crypto.createHash('sha256').update(bytes).digest('hex') };
}

async function waitForDelivered(page: Page): Promise<void> {
  const state = page.locator('[data-testid=delivery-state][data-state=delivered], [data-testid=delivery-state][data-state=rejected]');
  await state.waitFor({ timeout: 120_000 });
  assert.equal(await state.getAttribute('data-state'), 'delivered', await state.innerText());
}

/** File name → SHA-256 as the result page shows them. */
async function shownDigests(page: Page): Promise<Map<string, string>> {
  const rows = page.getByTestId('result-file');
  const shown = new Map<string, string>();
  for (let i = 0; i < (await rows.count()); i++) {
    const row = rows.nth(i);
    shown.set(await row.locator('td.file-name').innerText(), await row.getByTestId('sha256').innerText());
  }
  return shown;
}

/** The server's offset for an upload (tus HEAD), waiting out the lock an aborted PATCH leaves. */
async function serverOffset(uploadUrl: string, token: string): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const res = await fetch(uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', 'Inkast-Sender-Token': token } });
    if (res.status === 200) return Number(res.headers.get('upload-offset'));
    if (res.status !== 423) throw new Error(`HEAD ${uploadUrl} answered ${res.status}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${uploadUrl} stayed locked`);
}

const skip = chromiumMissing();

describe('the sender in Chromium', { skip }, () => {
  let app: RunningApp;
  let browser: Browser;
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'inkast-e2e-files-'));
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: 'admin@example.org' } });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
    for (const d of [dir, app?.dataDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  test('an unknown filedrop link answers 404 with the not-found page in the chosen language', async () => {
    const unknown = app.slug.split('').reverse().join('');
    for (const slug of [unknown, 'not-a-slug']) assert.equal((await fetch(`${app.url}/d/${slug}`)).status, 404);
    // Next fills in the not-found UI of a notFound() page only on hydration (vercel/next.js#62228).
    const context = await browser.newContext();
    await context.addCookies([{ name: 'lang', value: 'en', url: app.url }]);
    const page = await context.newPage();
    await page.goto(`${app.url}/d/${unknown}`);
    await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
    await context.close();
  });

  test('sends two files and sees them delivered with their SHA-256', { timeout: 180_000 }, async () => {
    const files = [randomFile(dir, 'remiss och röntgen.bin', 9 * MiB + 4321), randomFile(dir, 'labbsvar.txt', 300_000)];
    const context = await browser.newContext();
    const page = await context.newPage();
    const creations: { url: string; headers: Record<string, string> }[] = [];
    page.on('request', (req) => {
      if (req.method() === 'POST' && new URL(req.url()).pathname.startsWith('/api/tus')) {
        creations.push({ url: req.url(), headers: req.headers() });
      }
    });

    // ?lang=en chooses English and is then kept in the cookie, the address losing it.
    await page.goto(`${app.url}/d/${app.slug}?lang=en`);
    await page.waitForURL((url) => !url.searchParams.has('lang'));
    await page.getByLabel('Your email address').fill('sender@example.org');
    await page.getByLabel('Subject').fill('Referral with images');
    await page.getByLabel('Message (optional)').fill('Please see the attached files.');
    await page.locator('#files').setInputFiles(files.map((f) => f.path));
    await page.getByRole('button', { name: 'Encrypt and send' }).click();

    await waitForDelivered(page);
    await page.getByRole('heading', { name: 'Your files have been delivered' }).waitFor();
    assert.match(await page.getByTestId('reference').innerText(), /^IK-[0-9A-Z]{4}-[0-9A-Z]{4}$/);
    assert.deepEqual(await shownDigests(page), new Map(files.map((f) => [f.name, f.sha256])));

    // Nothing about the files travels in clear: tus gets the delivery id and nothing else.
    assert.equal(creations.length, 2);
    for (const { url, headers } of creations) {
      const keys = headers['upload-metadata'].split(',').map((pair) => pair.trim().split(' ')[0]);
      assert.deepEqual(keys, ['deliveryId']);
      const everything = url + JSON.stringify(headers);
      for (const f of files) assert.ok(!everything.includes(f.name) && !everything.includes(encodeURIComponent(f.name)));
    }
    await context.close();
  });

  test('after a reload mid-upload, the re-picked file continues at the server offset', { timeout: 240_000 }, async () => {
    const file = randomFile(dir, 'datortomografi.dcm', 24 * MiB);
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept()); // "leave the page?" while uploading
    let upload: { url: string; token: string } | undefined;
    page.on('response', (res) => {
      const req = res.request();
      if (req.method() === 'POST' && new URL(res.url()).pathname.startsWith('/api/tus') && res.status() === 201) {
        upload = { url: new URL(res.headers().location, res.url()).href, token: req.headers()['inkast-sender-token'] };
      }
    });
    // A slow uplink, so that the reload lands in the middle of the upload.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const throttle = (bytesPerSecond: number) =>
      cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput: bytesPerSecond,
      });
    await throttle(3 * MiB);

    await page.goto(`${app.url}/d/${app.slug}`);
    await page.getByLabel('Din e-postadress').fill('sender@example.org');
    await page.getByLabel('Ämne').fill('Uppföljning');
    await page.locator('#files').setInputFiles(file.path);
    await page.getByRole('button', { name: 'Kryptera och skicka' }).click();
    await page.waitForFunction(
      () => (document.querySelector('progress.progress-total') as HTMLProgressElement | null)?.value! >= 20,
      null,
      { timeout: 60_000 },
    );
    await page.reload();

    assert.ok(upload, 'the upload was created before the reload');
    const offsetBefore = await serverOffset(upload.url, upload.token);
    assert.ok(offsetBefore > 0, `the server holds part of the upload (offset ${offsetBefore})`);

    await throttle(-1);
    const patchOffsets: number[] = [];
    page.on('request', (req) => {
      if (req.method() === 'PATCH') patchOffsets.push(Number(req.headers()['upload-offset']));
    });
    await page.getByRole('heading', { name: 'Du har en leverans som inte är klar' }).waitFor();
    await page.locator('#repick').setInputFiles(file.path);

    await waitForDelivered(page);
    assert.ok(patchOffsets.length > 0);
    assert.equal(patchOffsets[0], offsetBefore, 'the first PATCH after the reload starts at the server offset, not 0');
    assert.deepEqual(await shownDigests(page), new Map([[file.name, file.sha256]]));
    await context.close();
  });

  test('a file changed behind the same size and date is caught and sent again afresh', { timeout: 240_000 }, async () => {
    const original = randomFile(dir, 'journalkopia.pdf', 24 * MiB);
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    const uploads: { url: string; token: string }[] = [];
    page.on('response', (res) => {
      const req = res.request();
      if (req.method() === 'POST' && new URL(res.url()).pathname.startsWith('/api/tus') && res.status() === 201) {
        uploads.push({ url: new URL(res.headers().location, res.url()).href, token: req.headers()['inkast-sender-token'] });
      }
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 3 * MiB });

    await page.goto(`${app.url}/d/${app.slug}`);
    await page.getByLabel('Din e-postadress').fill('sender@example.org');
    await page.getByLabel('Ämne').fill('Journalkopia');
    await page.locator('#files').setInputFiles(original.path);
    await page.getByRole('button', { name: 'Kryptera och skicka' }).click();
    await page.waitForFunction(
      () => (document.querySelector('progress.progress-total') as HTMLProgressElement | null)?.value! >= 20,
      null,
      { timeout: 60_000 },
    );
    await page.reload();
    assert.equal(uploads.length, 1);
    assert.ok((await serverOffset(uploads[0].url, uploads[0].token)) > 0);

    // Other bytes under the same name, size and modification time: only the chunk tags can tell.
    const { mtime } = fs.statSync(original.path);
    const changed = randomFile(dir, original.name, 24 * MiB);
    fs.utimesSync(changed.path, mtime, mtime);

    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const patchOffsets: number[] = [];
    page.on('request', (req) => {
      if (req.method() === 'PATCH') patchOffsets.push(Number(req.headers()['upload-offset']));
    });
    await page.getByRole('heading', { name: 'Du har en leverans som inte är klar' }).waitFor();
    await page.locator('#repick').setInputFiles(changed.path);

    await waitForDelivered(page);
    // A new upload (new key, salt and PKESK) from offset 0; the old one is gone from the server.
    assert.equal(uploads.length, 2);
    assert.equal(patchOffsets[0], 0);
    const head = await fetch(uploads[0].url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', 'Inkast-Sender-Token': uploads[0].token } });
    assert.notEqual(head.status, 200);
    assert.deepEqual(await shownDigests(page), new Map([[changed.name, changed.sha256]]));
    await context.close();
  });
});
