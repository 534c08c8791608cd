/**
 * The tus locker on PostgreSQL advisory locks, against a real server: two lockers stand for two
 * app instances (each has its own lock connection, as each process does).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { MemoryLocker } from '@tus/server';
import pg from 'pg';
import { freePort } from '@/lib/testing/app';
import { createPostgresDatabase, postgresAdminUrl } from '@/lib/testing/targets';
import { createUploadLocker, lockKey, PostgresLocker, UploadLockError } from './locker';

const never = new AbortController().signal;
const id = () => crypto.randomBytes(16).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A promise's outcome so far, without waiting for it. */
async function settled<T>(p: Promise<T>): Promise<'pending' | 'resolved' | 'rejected'> {
  return Promise.race([p.then(() => 'resolved' as const, () => 'rejected' as const), sleep(0).then(() => 'pending' as const)]);
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 5000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('createUploadLocker: MemoryLocker without PostgreSQL (PGlite), advisory locks with it', async () => {
  assert.ok(createUploadLocker({ databaseUrl: undefined }) instanceof MemoryLocker);
  const pgLocker = createUploadLocker({ databaseUrl: 'postgres://nobody@127.0.0.1:1/none' });
  assert.ok(pgLocker instanceof PostgresLocker);
  await (pgLocker as PostgresLocker).close();
});

test('lockKey: a stable signed 64-bit key per upload id', () => {
  const a = lockKey('3f2a');
  assert.equal(a, lockKey('3f2a'));
  assert.notEqual(a, lockKey('3f2b'));
  const n = BigInt(a);
  assert.ok(n >= -(2n ** 63n) && n < 2n ** 63n);
});

test('an unreachable PostgreSQL gives a clear 503, not a hang', async () => {
  const locker = new PostgresLocker({ connectionString: `postgres://postgres@127.0.0.1:${await freePort()}/x`, queryTimeoutMs: 2000 });
  const started = Date.now();
  const err = await locker.newLock(id()).lock(never, () => {}).catch((e: unknown) => e);
  assert.ok(err instanceof UploadLockError, String(err));
  assert.equal(err.status_code, 503);
  assert.match(err.body, /unavailable/);
  assert.ok(Date.now() - started < 3000);
  await locker.close();
});

const admin = await postgresAdminUrl();

test('PostgresLocker across instances', { skip: admin ? false : 'no PostgreSQL server answers' }, async (t) => {
  const url = await createPostgresDatabase(admin!);
  const lockers: PostgresLocker[] = [];
  const newLocker = (opts: Partial<ConstructorParameters<typeof PostgresLocker>[0]> = {}) => {
    const l = new PostgresLocker({ connectionString: url, ...opts });
    lockers.push(l);
    return l;
  };
  t.after(() => Promise.all(lockers.map((l) => l.close())));
  const a = newLocker();
  const b = newLocker();
  const sql = async <T extends pg.QueryResultRow>(text: string, params: unknown[] = []) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query<T>(text, params)).rows;
    } finally {
      await c.end();
    }
  };
  /** The backend holding an upload's advisory lock (pg_locks splits a bigint key into classid, objid). */
  const holderPid = async (upload: string) => {
    const key = BigInt.asUintN(64, BigInt(lockKey(upload)));
    const rows = await sql<{ pid: number }>(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1`,
      [(key >> 32n).toString(), (key & 0xffffffffn).toString()],
    );
    assert.equal(rows.length, 1, 'exactly one session holds the lock');
    return rows[0].pid;
  };
  const terminate = (pid: number) => sql('SELECT pg_terminate_backend($1)', [pid]);

  await t.test('a contender on another instance asks the holder to yield, and gets the lock when it does', async () => {
    const upload = id();
    const held = a.newLock(upload);
    let releaseRequests = 0;
    await held.lock(never, () => void releaseRequests++);
    const contender = b.newLock(upload);
    const acquired = contender.lock(never, () => {});
    await until(() => releaseRequests > 0, "the holder's requestRelease");
    assert.equal(await settled(acquired), 'pending', 'the contender waits while the holder holds');
    const unlockedAt = Date.now();
    await held.unlock();
    await acquired;
    assert.ok(Date.now() - unlockedAt < 400, `woken by the release notification (${Date.now() - unlockedAt} ms)`);
    // and now the first instance is the one that waits
    const again = a.newLock(upload);
    const reacquired = again.lock(never, () => {});
    await sleep(100);
    assert.equal(await settled(reacquired), 'pending');
    await contender.unlock();
    await reacquired;
    await again.unlock();
  });

  await t.test('a holder that does not yield: the contender gives up after the acquire timeout with 423', async () => {
    const upload = id();
    const held = a.newLock(upload);
    let asked = 0;
    await held.lock(never, () => void asked++);
    const impatient = newLocker({ acquireLockTimeout: 700 });
    const started = Date.now();
    const err = await impatient.newLock(upload).lock(never, () => {}).catch((e: unknown) => e);
    const waited = Date.now() - started;
    assert.ok(err instanceof UploadLockError && err.status_code === 423, String(err));
    assert.ok(waited >= 650 && waited < 2000, `gave up after ${waited} ms`);
    assert.ok(asked >= 1, 'the holder was asked to yield');
    assert.equal(impatient.entries.size, 0, 'nothing left behind by the attempt');
    assert.equal(impatient['waiters'].size, 0);
    await held.unlock();
  });

  await t.test("an aborted request stops waiting at once (tus's stop signal)", async () => {
    const upload = id();
    const held = a.newLock(upload);
    await held.lock(never, () => {});
    const stop = new AbortController();
    const waiting = b.newLock(upload).lock(stop.signal, () => {});
    await sleep(100);
    const abortedAt = Date.now();
    stop.abort();
    await assert.rejects(waiting, (e) => e instanceof UploadLockError && e.status_code === 423);
    assert.ok(Date.now() - abortedAt < 200);
    await held.unlock();
  });

  await t.test("a holder's connection dying (its process killed) frees the lock; the holder is told", async () => {
    const upload = id();
    const doomed = newLocker();
    let told = 0;
    await doomed.newLock(upload).lock(never, () => void told++);
    const contender = b.newLock(upload);
    const acquired = contender.lock(never, () => {});
    await sleep(100);
    assert.equal(await settled(acquired), 'pending');
    await terminate(await holderPid(upload));
    await acquired;
    await until(() => told > 0, 'the dead session\'s holder asked to stop');
    await contender.unlock();
  });

  await t.test('within one instance: the second request waits for the first (advisory locks are re-entrant, the locker is not)', async () => {
    const upload = id();
    const first = a.newLock(upload);
    let asked = 0;
    await first.lock(never, () => void asked++);
    const second = a.newLock(upload);
    const acquired = second.lock(never, () => {});
    await until(() => asked > 0, 'the local holder asked to yield');
    await sleep(150);
    assert.equal(await settled(acquired), 'pending', 'not granted twice by the same session');
    await first.unlock();
    await acquired;
    // and it is really held in PostgreSQL: the other instance cannot have it
    const other = newLocker({ acquireLockTimeout: 300 });
    await assert.rejects(other.newLock(upload).lock(never, () => {}), (e) => e instanceof UploadLockError && e.status_code === 423);
    await second.unlock();
    await other.newLock(upload).lock(never, () => {});
  });

  await t.test('different uploads do not block each other; unlocking an unheld lock throws', async () => {
    const x = a.newLock(id());
    const y = b.newLock(id());
    await x.lock(never, () => {});
    await y.lock(never, () => {});
    await x.unlock();
    await y.unlock();
    await assert.rejects(x.unlock(), /unlocked lock/);
  });

  await t.test('a locker reconnects after its connection was lost', async () => {
    const l = newLocker();
    const upload = id();
    const first = l.newLock(upload);
    await first.lock(never, () => {});
    const pid = await holderPid(upload);
    await first.unlock();
    await terminate(pid);
    await sleep(100);
    const next = l.newLock(upload);
    await next.lock(never, () => {});
    await next.unlock();
  });
});
