import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AddressObject } from 'mailparser';
import { parseConfig } from '@/lib/config';
import { openDb, type Db } from '@/lib/db';
import { runJobsUntilIdle } from '@/lib/jobs';
import type { Locale } from '@/lib/i18n';
import { databaseTargets } from '@/lib/testing/targets';
import { TestSmtp } from '@/lib/testing/smtp';
import { listOutbox, queueMail, registerMailJobs } from './index';

const sentAt = new Date('2025-03-04T13:05:00Z');

async function outboxRow(database: Db, id: string) {
  return (
    await database.query<{ state: string; attempts: number; last_error: string | null }>(
      `SELECT state, attempts, last_error FROM outbox WHERE id = $1`,
      [id],
    )
  ).rows[0];
}
async function mailJob(database: Db, outboxId: string) {
  return (
    await database.query<{ id: number; state: string; attempts: number; last_error: string | null }>(
      `SELECT id, state, attempts, last_error FROM jobs WHERE kind = 'mail' AND payload->>'outboxId' = $1`,
      [outboxId],
    )
  ).rows;
}
const signInMail = (to: string, locale: Locale, token: string) => ({
  to,
  template: 'sign-in-link' as const,
  locale,
  dedupeKey: `sign-in:${token}`,
  params: { link: `https://inkast.test/auth/${token}`, expiresAt: new Date() },
});
const makeDue = (database: Db) => database.query(`UPDATE jobs SET run_at = now() WHERE kind = 'mail' AND state = 'queued'`);

for (const target of await databaseTargets()) {
  test(`mail on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    const database = await openDb(url ? { databaseUrl: url } : {});
    const smtp = await TestSmtp.start();
    t.after(async () => {
      await smtp.stop();
      await database.close();
    });
    const cfg = parseConfig({
      SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      MAIL_FROM: 'Inkast <inkast@inkast.test>',
      INKAST_PUBLIC_URL: 'https://inkast.test',
      INKAST_LOG_LEVEL: 'silent',
    });
    registerMailJobs(cfg);

    await t.test('queued mail arrives once, with the right To, Subject and text, in Swedish and English', async () => {
      const [svId, enId] = await database.transaction(async (tx) => [
        await queueMail(
          tx,
          {
            to: 'avsandare@example.se',
            template: 'delivery-rejected',
            locale: 'sv',
            dedupeKey: 'rejected:1',
            params: { reference: 'INK-AAAA', sentAt, reason: 'manifest-unreadable' },
          },
          cfg,
        ),
        await queueMail(
          tx,
          {
            to: 'handler@example.se',
            template: 'delivery-notification',
            locale: 'en',
            dedupeKey: 'notify:1',
            params: {
              deliveryId: 'd-1',
              mailboxName: 'Röntgen',
              senderEmail: 'a@b.se',
              senderVerified: false,
              fileCount: 2,
              totalBytes: 2048,
            },
          },
          cfg,
        ),
      ]);
      assert.equal(await runJobsUntilIdle(database), 2);

      const [sv] = smtp.to('avsandare@example.se');
      assert.equal(sv.subject, 'Din leverans INK-AAAA kunde inte tas emot');
      assert.match(sv.text ?? '', /Orsak: Leveransens innehållsförteckning kunde inte läsas\./);
      assert.equal((sv.from as AddressObject).value[0].address, 'inkast@inkast.test');
      assert.equal(sv.messageId, `<${svId}@inkast.test>`);
      assert.equal(sv.headers.get('auto-submitted'), 'auto-generated');
      assert.match(sv.html || '', /<html lang="sv">/);

      const [en] = smtp.to('handler@example.se');
      assert.equal(en.subject, 'New delivery to Röntgen');
      assert.match(en.text ?? '', /https:\/\/inkast\.test\/inbox\/deliveries\/d-1/);
      assert.equal(en.messageId, `<${enId}@inkast.test>`);

      assert.equal((await outboxRow(database, svId)).state, 'sent');
      assert.equal((await mailJob(database, svId))[0].state, 'done');

      // A worker that crashed after the server accepted the mail leaves the job to run again:
      // the outbox row says 'sent', so nothing is sent twice.
      await database.query(`UPDATE jobs SET state = 'queued', run_at = now() WHERE kind = 'mail'`);
      assert.equal(await runJobsUntilIdle(database), 2);
      assert.equal(smtp.received.length, 2);
    });

    await t.test('queueing the same dedupe key again, or in a rolled-back transaction, sends nothing more', async () => {
      const mail = {
        to: 'avsandare@example.se',
        template: 'download-receipt',
        locale: 'en',
        dedupeKey: 'receipt:dl-1',
        params: {
          reference: 'INK-BBBB',
          sentAt,
          fileNumber: 1,
          fileBytes: 10,
          sha256: 'a'.repeat(64),
          downloadedBy: 'Anna Andersson',
          downloadedAt: new Date(),
        },
      } as const;
      const first = await queueMail(database, mail, cfg);
      assert.equal(await queueMail(database, mail, cfg), first);
      await assert.rejects(
        database.transaction(async (tx) => {
          await queueMail(tx, { ...mail, dedupeKey: 'receipt:rolled-back' }, cfg);
          throw new Error('the download was not recorded');
        }),
      );
      const before = smtp.received.length;
      await runJobsUntilIdle(database);
      assert.equal(smtp.received.length, before + 1);
      assert.equal((await database.query(`SELECT 1 FROM outbox WHERE dedupe_key = 'receipt:rolled-back'`)).rows.length, 0);
      assert.equal((await mailJob(database, first)).length, 1);
    });

    await t.test('SMTP down: the job retries with backoff and the mail arrives after the restart, exactly once', async () => {
      await smtp.stop();
      const id = await queueMail(
        database,
        signInMail('outage@example.se', 'sv', 'x'),
        cfg,
      );
      await runJobsUntilIdle(database);
      let [job] = await mailJob(database, id);
      assert.equal(job.state, 'queued');
      assert.equal(job.attempts, 1);
      assert.ok(job.last_error);
      assert.equal((await outboxRow(database, id)).state, 'queued');
      assert.equal(await runJobsUntilIdle(database), 0, 'waits for its backoff');

      await makeDue(database);
      await runJobsUntilIdle(database);
      assert.equal((await mailJob(database, id))[0].attempts, 2);

      await smtp.resume();
      await makeDue(database);
      await runJobsUntilIdle(database);
      [job] = await mailJob(database, id);
      assert.equal(job.state, 'done');
      assert.equal(job.attempts, 3);
      const row = await outboxRow(database, id);
      assert.equal(row.state, 'sent');
      assert.equal(row.attempts, 3);

      await makeDue(database);
      await runJobsUntilIdle(database);
      const arrived = smtp.to('outage@example.se');
      assert.equal(arrived.length, 1);
      assert.equal(arrived[0].subject, 'Logga in i Inkast');
      assert.match(arrived[0].text ?? '', /https:\/\/inkast\.test\/auth\/x/);
    });

    await t.test('a permanent 5xx fails the job and the outbox row at once', async () => {
      const id = await queueMail(
        database,
        signInMail('nobody@example.se', 'en', 'y'),
        cfg,
      );
      await runJobsUntilIdle(database);
      const [job] = await mailJob(database, id);
      assert.equal(job.state, 'failed');
      assert.equal(job.attempts, 1);
      const row = await outboxRow(database, id);
      assert.equal(row.state, 'failed');
      assert.match(row.last_error ?? '', /550/);
    });

    await t.test('without SMTP the mail is kept in the outbox for the admin', async () => {
      registerMailJobs(parseConfig({ INKAST_LOG_LEVEL: 'silent' }));
      const before = smtp.received.length;
      const id = await queueMail(
        database,
        signInMail('kept@example.se', 'sv', 'z'),
        cfg,
      );
      await runJobsUntilIdle(database);
      assert.equal(smtp.received.length, before);
      assert.equal((await outboxRow(database, id)).state, 'kept');

      const page = await listOutbox(database, { limit: 2 });
      assert.equal(page.total, 6);
      assert.equal(page.entries.length, 2);
      const kept = (await listOutbox(database, { limit: 100 })).entries.find((e) => e.id === id)!;
      assert.equal(kept.to, 'kept@example.se');
      assert.equal(kept.template, 'sign-in-link');
      assert.match(kept.text, /https:\/\/inkast\.test\/auth\/z/);
    });
  });
}
