/**
 * Fault suite, workers: an app instance without a worker (INKAST_WORKER=false) and two worker
 * processes (`bin/worker.ts`, as `npm run worker`) on one real PostgreSQL and one Ceph RGW bucket,
 * with a real SMTP server on loopback. The worker verifying a large delivery is SIGKILLed in the
 * middle of the verification; the other worker takes the job over once its lease has run out
 * (INKAST_JOB_LEASE_MS); the delivery is delivered once and every member is notified once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { newDataDir, startApp, freePort } from '@/lib/testing/app';
import { s3AppEnv } from '@/lib/testing/inspect';
import { createPostgresDatabase, postgresAdminUrl, s3Settings } from '@/lib/testing/targets';
import { bufferSource, openDelivery, prepareFile, submit, uploadFile, waitForFinalState } from '@/lib/uploads/client';

const MiB = 1024 * 1024;
const root = path.resolve(import.meta.dirname, '..', '..');
/** Large enough that verifying it (stream from Ceph, decrypt, hash) takes seconds here. */
const FILE_BYTES = 200 * MiB;
const LEASE_MS = 3000;

const pgAdmin = await postgresAdminUrl();
const s3 = await s3Settings();
const skip = pgAdmin && s3 ? false : 'needs a real PostgreSQL and Ceph RGW (.ci/run starts both)';
if (skip) console.log(`# worker takeover fault suite skipped: ${skip}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => T | Promise<T>, what: string, ms = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

interface WorkerProcess {
  pid: number;
  alive(): boolean;
  output(): string;
  kill(): Promise<void>;
}

/** `node --import tsx bin/worker.ts` (what `npm run worker` runs) with the deployment's env. */
async function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bin', 'worker.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TMPDIR: process.env.TMPDIR ?? '/tmp', NODE_ENV: 'production', INKAST_DATA_DIR: newDataDir(), INKAST_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  await until(() => {
    if (child.exitCode !== null) throw new Error(`the worker exited with ${child.exitCode}:\n${out}`);
    return out.includes('Inkast is running');
  }, 'the worker to start', 60_000).catch((err) => {
    child.kill('SIGKILL');
    throw err;
  });
  return {
    pid: child.pid!,
    alive: () => child.exitCode === null && child.signalCode === null,
    output: () => out,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A real SMTP server on loopback recording every message it accepts. */
async function startSmtp() {
  const port = await freePort();
  const received: ParsedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData: (stream, _session, callback) => {
      simpleParser(stream).then((mail) => (received.push(mail), callback()), callback);
    },
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('a worker killed mid-verification: another takes the job over after its lease; delivered once, notified once', { skip, timeout: 240_000 }, async (t) => {
  const smtp = await startSmtp();
  t.after(() => smtp.close());
  const env: Record<string, string> = {
    DATABASE_URL: await createPostgresDatabase(pgAdmin!),
    ...(await s3AppEnv(s3!)),
    INKAST_MASTER_KEY: crypto.randomBytes(32).toString('base64'),
    INKAST_SESSION_SECRET: crypto.randomBytes(32).toString('hex'),
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    INKAST_WORKER: 'false',
    INKAST_JOB_LEASE_MS: String(LEASE_MS),
  };
  const app = await startApp({ env });
  const running: { kill(): Promise<void> }[] = [app];
  t.after(() => Promise.all(running.map((p) => p.kill())));
  const db = new pg.Client({ connectionString: env.DATABASE_URL });
  await db.connect();
  t.after(() => db.end());
  const one = async <T extends pg.QueryResultRow>(sql: string, params: unknown[]) => (await db.query<T>(sql, params)).rows[0];

  // The administrator's mailbox gets two more members: three people to notify.
  const mailbox = await one<{ id: string }>('SELECT id FROM mailboxes WHERE filedrop_slug = $1', [app.slug]);
  for (const who of ['handler-1', 'handler-2']) {
    const u = await one<{ id: string }>(
      `INSERT INTO users (email, display_name, role, locale) VALUES ($1, $2, 'handler', 'en') RETURNING id`,
      [`${who}@example.org`, who],
    );
    await db.query('INSERT INTO mailbox_members (mailbox_id, user_id) VALUES ($1, $2)', [mailbox.id, u.id]);
  }
  const members = (
    await db.query<{ email: string }>(
      'SELECT u.email FROM mailbox_members mm JOIN users u ON u.id = mm.user_id WHERE mm.mailbox_id = $1 ORDER BY 1',
      [mailbox.id],
    )
  ).rows.map((r) => r.email);
  assert.equal(members.length, 3);

  const workers = [await startWorkerProcess(env), await startWorkerProcess(env)];
  running.push(...workers);

  const t0 = Date.now();
  const delivery = await openDelivery(app.url, { slug: app.slug, senderEmail: 'big@example.org' });
  const file = await prepareFile(delivery, bufferSource('large.bin', crypto.randomBytes(FILE_BYTES)));
  await uploadFile(app.url, delivery, file, { chunkSize: 50 * MiB });
  const uploadedIn = Date.now() - t0;
  await submit(app.url, delivery, { subject: 'takeover', message: 'm' }, [file]);

  type JobRow = { id: string; state: string; attempts: number; locked_by: string | null };
  const verifyJob = () =>
    one<JobRow>(
      `SELECT id, state, attempts, locked_by FROM jobs WHERE kind = 'verify-delivery' AND payload->>'deliveryId' = $1`,
      [delivery.deliveryId],
    );
  const deliveryState = async () => (await one<{ state: string }>('SELECT state FROM deliveries WHERE id = $1', [delivery.deliveryId])).state;
  const pidOf = (lockedBy: string | null) => Number(/:(\d+):[0-9a-f]+$/.exec(lockedBy ?? '')?.[1]);

  // Whichever worker claims the verification is the one to die, in the middle of it.
  const claimed = await until(async () => {
    const j = await verifyJob();
    return j?.state === 'running' ? j : undefined;
  }, 'a worker to claim the verification', 30_000);
  const verifyStarted = Date.now();
  const victim = workers.find((w) => w.pid === pidOf(claimed.locked_by));
  assert.ok(victim, `the job is held by one of our workers (${claimed.locked_by})`);
  const survivor = workers.find((w) => w !== victim)!;
  // Well into the job (keys read, object streaming), far from its end (~3 s for 200 MiB here).
  await sleep(500);
  assert.equal(await deliveryState(), 'submitted', 'still verifying half a second in');
  await victim.kill();
  const killedAt = Date.now();
  const atKill = await verifyJob();
  assert.equal(atKill.attempts, 1);
  assert.equal(atKill.state, 'running', 'the job was running when its worker died');
  assert.equal(pidOf(atKill.locked_by), victim.pid);
  assert.equal(await deliveryState(), 'submitted', 'the worker died before the verification finished');

  // The survivor claims it once the lease has run out (no heartbeat since the kill), then finishes it.
  const retaken = await until(async () => {
    const j = await verifyJob();
    return j.attempts >= 2 ? j : undefined;
  }, 'the job to be taken over', LEASE_MS + 15_000);
  const takenOverAfter = Date.now() - killedAt;
  assert.equal(retaken.attempts, 2);
  if (retaken.state === 'running') assert.equal(pidOf(retaken.locked_by), survivor.pid, 'the other worker took it');
  // The lease was last renewed at most a third of it before the kill.
  assert.ok(takenOverAfter >= LEASE_MS * (2 / 3) - 250, `taken over ${takenOverAfter} ms after the kill, before the lease ran out`);
  const status = await waitForFinalState(app.url, delivery, 120_000);
  const verifyTook = Date.now() - verifyStarted;
  assert.equal(status.state, 'delivered', `rejected: ${status.rejectReason}`);
  const job = await verifyJob();
  assert.deepEqual([job.state, job.attempts], ['done', 2], 'done on the second attempt, not a third');
  assert.ok(survivor.alive());

  // Notified once: one outbox row and one SMTP message per member, however the job was run.
  const outbox = (
    await db.query<{ to_address: string; state: string }>(
      `SELECT to_address, state FROM outbox WHERE template = 'delivery-notification' AND dedupe_key LIKE $1 ORDER BY 1`,
      [`delivery-notification:${delivery.deliveryId}:%`],
    )
  ).rows;
  assert.deepEqual(outbox.map((r) => r.to_address), members);
  const forThis = () => smtp.received.filter((m) => (m.text ?? '').includes(`/inbox/deliveries/${delivery.deliveryId}`));
  await until(() => forThis().length >= members.length, 'the notifications to arrive', 30_000);
  // Give a duplicate every chance to arrive: both workers poll every second.
  await sleep(2500);
  const arrived = forThis();
  const recipients = arrived.flatMap((m) => (m.to as AddressObject).value.map((a) => a.address!)).sort();
  assert.deepEqual(recipients, members, 'exactly one notification per member');
  assert.equal(new Set(arrived.map((m) => m.messageId)).size, arrived.length);
  const sent = (
    await db.query<{ state: string }>(`SELECT state FROM outbox WHERE dedupe_key LIKE $1`, [`delivery-notification:${delivery.deliveryId}:%`])
  ).rows;
  assert.ok(sent.every((r) => r.state === 'sent'));
  const deliveredRows = await one<{ n: number }>(
    `SELECT count(*)::int AS n FROM deliveries WHERE id = $1 AND state = 'delivered' AND delivered_at IS NOT NULL`,
    [delivery.deliveryId],
  );
  assert.equal(deliveredRows.n, 1);
  console.log(
    `# ${FILE_BYTES / MiB} MiB uploaded in ${uploadedIn} ms; worker ${victim.pid} killed 0.5 s into the verification; ` +
      `taken over by ${survivor.pid} ${takenOverAfter} ms later (lease ${LEASE_MS} ms); delivered ${verifyTook} ms after the first claim`,
  );
});
