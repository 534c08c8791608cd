/**
 * Readiness checks in-process, against what answers and what does not: PGlite and a local
 * directory, a real SMTP server (up, then down), PostgreSQL and Ceph RGW when they answer.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { freePort } from '@/lib/testing/app';
import { s3AppEnv } from '@/lib/testing/inspect';
import { useFreshProcessState } from '@/lib/testing/process';
import { createPostgresDatabase, postgresAdminUrl, s3Settings } from '@/lib/testing/targets';
import { closeDb, db } from '@/lib/db';
import { objectStore } from '@/lib/storage';
import { parseCheckNames, readiness, resetReadiness } from './index';

async function smtpServer(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  const port = await freePort();
  let connections = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect: (_s, cb) => (connections++, cb()),
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, connections: () => connections, close: () => new Promise((r) => server.close(() => r())) };
}

/** This process as a booted app would be: configuration from env, the database open, the store ready. */
async function fresh(env: Record<string, string> = {}, boot = true) {
  const state = await useFreshProcessState(env);
  if (boot) {
    await db();
    await objectStore().ensureReady();
  }
  resetReadiness();
  return state;
}

test.after(() => closeDb());

test('embedded defaults: database and storage ok, mail skipped without SMTP_URL', async () => {
  await fresh();
  assert.deepEqual(await readiness(), { status: 'ready', checks: { database: 'ok', storage: 'ok', mail: 'skipped' } });
});

test('the objects directory must be usable', async () => {
  const { dataDir } = await fresh();
  fs.rmSync(path.join(dataDir, 'objects'), { recursive: true });
  assert.deepEqual((await readiness(['storage'])).checks, { storage: 'failed' }, 'a missing directory');
  resetReadiness();
  // A file where the objects directory should be.
  fs.writeFileSync(path.join(dataDir, 'objects'), 'x');
  const r = await readiness(['storage']);
  assert.deepEqual(r, { status: 'not-ready', checks: { storage: 'failed' } });
});

test('SMTP: verified when it answers, failed (without saying where) when it does not; results are reused briefly', async () => {
  const smtp = await smtpServer();
  await fresh({ SMTP_URL: `smtp://127.0.0.1:${smtp.port}` });
  assert.deepEqual((await readiness(['mail'])).checks, { mail: 'ok' });
  assert.equal(smtp.connections(), 1);
  // Concurrent and repeated callers within the cache window share the one result.
  const all = await Promise.all([readiness(), readiness(), readiness()]);
  assert.deepEqual(all[0], { status: 'ready', checks: { database: 'ok', storage: 'ok', mail: 'ok' } });
  assert.equal(smtp.connections(), 1, 'one SMTP connection for four readiness calls');
  await smtp.close();

  resetReadiness();
  const down = await readiness();
  assert.equal(down.status, 'not-ready');
  assert.deepEqual(down.checks, { database: 'ok', storage: 'ok', mail: 'failed' });
  const text = JSON.stringify(down);
  assert.ok(!text.includes(String(smtp.port)) && !text.includes('127.0.0.1'), 'no host or port in the answer');
  // A subset without mail is ready meanwhile (what a load balancer may ask for).
  assert.equal((await readiness(parseCheckNames('database,storage'))).status, 'ready');
});

test('parseCheckNames: all by default, a subset, unknown names refused', () => {
  assert.deepEqual(parseCheckNames(null), ['database', 'storage', 'mail']);
  assert.deepEqual(parseCheckNames('storage, database,storage'), ['storage', 'database']);
  assert.equal(parseCheckNames('database,secrets'), undefined);
});

test('PostgreSQL unreachable: database failed, quickly', async () => {
  await fresh({ DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/inkast` }, false);
  const started = Date.now();
  const r = await readiness(['database']);
  assert.deepEqual(r, { status: 'not-ready', checks: { database: 'failed' } });
  assert.ok(Date.now() - started < 3500, `took ${Date.now() - started} ms`);
});

const pgAdmin = await postgresAdminUrl();
const s3 = await s3Settings();

test('PostgreSQL and Ceph RGW: ready; a missing bucket fails storage', { skip: pgAdmin && s3 ? false : 'needs PostgreSQL and Ceph RGW' }, async () => {
  const s3env = await s3AppEnv(s3!);
  await fresh({ DATABASE_URL: await createPostgresDatabase(pgAdmin!), ...s3env });
  assert.deepEqual(await readiness(), { status: 'ready', checks: { database: 'ok', storage: 'ok', mail: 'skipped' } });
  await fresh({ ...s3env, S3_BUCKET: `${s3env.S3_BUCKET}-missing` }, false);
  const r = await readiness(['storage']);
  assert.deepEqual(r, { status: 'not-ready', checks: { storage: 'failed' } });
  assert.ok(!JSON.stringify(r).includes(s3env.S3_BUCKET));
});
