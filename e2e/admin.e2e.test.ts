/**
 * The administrator's journey in a real browser against the built app, mail through a real SMTP
 * server on loopback: sign in by emailed link, create the shared mailbox "Remisser", add an
 * existing handler to it, copy its filedrop link with the Copy button; a sender uses that link,
 * and the member finds the delivery in the shared mailbox of their inbox. Every field is found
 * by its label and every control by its role and name, which is what proves the labels.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startApp, type RunningApp } from '@/lib/testing/app';
import { signInLinkFrom, startMailCatcher, type MailCatcher } from '@/lib/testing/sign-in';
import { bufferSource, sendDelivery, waitForFinalState } from '@/lib/uploads/client';
import { chromiumMissing, launchChromium } from './chromium';

const ADMIN = 'it-admin@region.example';
const HANDLER = 'karin@region.example';
const SENDER = 'avsandare@vardcentral.example';
const SCREENSHOTS = process.env.INKAST_SCREENSHOT_DIR ?? '/tmp';

const skip = chromiumMissing();

describe('the administrator in Chromium', { skip }, () => {
  let smtp: MailCatcher;
  let app: RunningApp;
  let browser: Browser;

  before(async () => {
    smtp = await startMailCatcher();
    app = await startApp({ env: { INKAST_ADMIN_EMAIL: ADMIN, SMTP_URL: smtp.url, MAIL_FROM: 'Inkast <inkast@region.example>' } });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
    await smtp?.stop();
  });

  /** The next sign-in link to `address`, past other mail (an invitation, a notification). */
  async function nextSignInLink(address: string): Promise<string> {
    for (;;) {
      const mail = await smtp.nextMailTo(address, 30_000);
      if (/\/auth\/verify\?/.test(mail.text ?? '')) return signInLinkFrom(mail);
    }
  }

  /** Signed out, `path` sends to the sign-in page; the emailed link brings the user back there. */
  async function signIn(page: Page, email: string, path: string): Promise<void> {
    await page.goto(`${app.url}${path}`);
    await page.waitForURL((url) => url.pathname === '/signin');
    await page.getByLabel('E-postadress').fill(email);
    await page.getByRole('button', { name: 'Skicka inloggningslänk' }).click();
    await page.getByRole('heading', { level: 1, name: 'Kontrollera din e-post' }).waitFor();
    await page.goto(await nextSignInLink(email));
    await page.waitForURL((url) => url.pathname === path);
  }

  test('creates a shared mailbox, adds a handler, hands out its link; the delivery reaches the member', { timeout: 180_000 }, async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url });
    const page = await context.newPage();
    await signIn(page, ADMIN, '/admin/mailboxes');
    await page.getByRole('heading', { level: 1, name: 'Brevlådor' }).waitFor();
    await page.getByRole('table', { name: 'Alla brevlådor, gemensamma först' }).waitFor();

    // The handler exists before they are added: invited through the administration API.
    const invited = await context.request.post(`${app.url}/api/admin/users`, {
      data: { email: HANDLER, displayName: 'Karin Kurator', role: 'handler', locale: 'sv' },
    });
    assert.equal(invited.status(), 201, await invited.text());

    await page.getByLabel('Namn', { exact: true }).fill('Remisser');
    await page.getByLabel('Funktionsadress (frivillig)').fill('remisser@region.example');
    await page.getByRole('button', { name: 'Skapa brevlådan' }).click();
    await page.waitForURL((url) => /^\/admin\/mailboxes\/[0-9a-f-]{36}$/.test(url.pathname));
    await page.getByRole('heading', { level: 1, name: 'Brevlåda: Remisser' }).waitFor();
    assert.match(await page.getByRole('status').filter({ hasText: 'Brevlådan är skapad' }).innerText(), /filedrop-länken/);

    await page.getByLabel('E-postadress till en befintlig användare').fill(HANDLER);
    await page.getByLabel('Roll').selectOption({ label: 'Handläggare' });
    await page.getByRole('button', { name: 'Lägg till i Remisser' }).click();
    await page.getByRole('status').filter({ hasText: 'Medlemmen är tillagd.' }).waitFor();
    const members = page.getByRole('table', { name: 'Medlemmar i Remisser' });
    assert.match(await members.getByRole('row', { name: /Karin Kurator/ }).innerText(), new RegExp(`${HANDLER}\\s+Handläggare\\s+Aktivt`));
    await members.getByRole('button', { name: 'Ta bort Karin Kurator från Remisser' }).waitFor();

    // The other forms are there, each field labelled and each button naming its mailbox.
    for (const label of ['Största leverans (GB)', 'Filer per leverans', 'Dagar som leveranser sparas', 'Lösenfras (minst 12 tecken)', 'Upprepa lösenfrasen']) {
      await page.getByLabel(label).waitFor();
    }
    for (const name of ['Skapa ny länk för Remisser', 'Stäng av länken för Remisser', 'Spara reglerna för Remisser', 'Skapa nytt nyckelpar för Remisser', 'Hämta nyckelfil för Remisser']) {
      await page.getByRole('button', { name }).waitFor();
    }
    assert.match(await page.locator('#link-warning').innerText(), /slutar fungera på en gång/);

    const shown = await page.getByLabel('Länken som avsändare använder').inputValue();
    await page.getByRole('button', { name: 'Kopiera filedrop-länken till Remisser' }).click();
    await page.getByRole('status').filter({ hasText: 'Länken är kopierad.' }).waitFor();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, shown);
    assert.equal(new URL(copied).origin, app.url);
    await page.screenshot({ path: `${SCREENSHOTS}/inkast-admin-mailbox.png`, fullPage: true });

    // The sender uses the copied link.
    const subject = 'Remiss: Per Persson, kardiologi';
    const slug = new URL(copied).pathname.replace(/^\/d\//, '');
    const { delivery } = await sendDelivery(app.url, {
      slug,
      senderEmail: SENDER,
      subject,
      message: 'Hej, här är remissen.',
      files: [bufferSource('remiss.pdf', Buffer.from('%PDF-1.7 remiss'), 'application/pdf')],
    });
    assert.equal((await waitForFinalState(app.url, delivery)).state, 'delivered');

    // The list shows the mailbox with its member and delivery.
    await page.getByRole('link', { name: 'Alla brevlådor' }).click();
    const row = page.getByRole('row', { name: /Remisser/ });
    assert.match(await row.innerText(), /Remisser\s+Gemensam\s+remisser@region\.example\s+På\s+1\s+1/);
    await context.close();

    // The member signs in and finds the delivery in the shared mailbox.
    const memberContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const member = await memberContext.newPage();
    await signIn(member, HANDLER, '/inbox');
    await member.getByRole('heading', { level: 1, name: 'Inkorg' }).waitFor();
    await member.getByRole('heading', { level: 2, name: 'Din filedrop-länk' }).waitFor();
    const shared = member.getByRole('link', { name: /Remisser/ });
    assert.match(await shared.innerText(), /Gemensam/);
    await shared.click();
    await member.getByRole('heading', { level: 2, name: 'Remisser' }).waitFor();
    const deliveryRow = member.getByTestId('delivery-row');
    assert.equal(await deliveryRow.count(), 1);
    assert.ok((await deliveryRow.innerText()).includes(subject), 'the member reads the subject');
    assert.ok((await deliveryRow.innerText()).includes(SENDER));
    await member.screenshot({ path: `${SCREENSHOTS}/inkast-admin-member-inbox.png`, fullPage: true });
    await memberContext.close();
  });
});
