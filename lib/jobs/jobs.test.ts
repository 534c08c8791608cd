import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { openDb, type Db } from '@/lib/db';
import { databaseTargets } from '@/lib/testing/targets';
import {
  enqueue,
  enqueueScheduledJobs,
  PermanentJobError,
  registerJobHandler,
  runJobsUntilIdle,
  schedule,
  startWorker,
  stopWorker,
  type JobContext,
} from './index';
import { claimJobs } from './queue';

interface JobRow {
  id: number;
  state: string;
  attempts: number;
  last_error: string | null;
  locked_by: string | null;
  delay_ms: number;
  finished_at: Date | null;
}

async function job(database: Db, id: number): Promise<JobRow> {
  const r = await database.query<JobRow>(
    `SELECT id, state, attempts, last_error, locked_by, finished_at,
            extract(epoch FROM run_at - now()) * 1000 AS delay_ms
       FROM jobs WHERE id = $1`,
    [id],
  );
  return { ...r.rows[0], delay_ms: Number(r.rows[0].delay_ms) };
}

/** Lets backoff pass without waiting for it. */
const makeDue = (database: Db, id: number) => database.query(`UPDATE jobs SET run_at = now() WHERE id = $1`, [id]);

async function waitFor(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

for (const target of await databaseTargets()) {
  test(`jobs on ${target.name}`, async (t) => {
    const url = await target.freshDatabase();
    const database = await openDb(url ? { databaseUrl: url } : {});
    t.after(() => database.close());

    await t.test('enqueue is idempotent on the dedupe key and joins the caller transaction', async () => {
      const first = await enqueue(database, 'noop', { n: 1 }, { dedupeKey: 'noop:1' });
      const again = await enqueue(database, 'noop', { n: 2 }, { dedupeKey: 'noop:1' });
      assert.equal(typeof first, 'number');
      assert.equal(again, undefined);
      const rows = await database.query<{ payload: { n: number } }>(`SELECT payload FROM jobs WHERE dedupe_key = 'noop:1'`);
      assert.deepEqual(rows.rows.map((r) => r.payload), [{ n: 1 }]);

      await assert.rejects(
        database.transaction(async (tx) => {
          await enqueue(tx, 'noop', {}, { dedupeKey: 'noop:rolled-back' });
          throw new Error('the event failed');
        }),
      );
      const gone = await database.query(`SELECT 1 FROM jobs WHERE dedupe_key = 'noop:rolled-back'`);
      assert.equal(gone.rows.length, 0);
    });

    await t.test('a failing handler is retried with backoff, then failed; payload stays out of last_error', async () => {
      const seen: JobContext[] = [];
      registerJobHandler('flaky', async (_payload, ctx) => {
        seen.push(ctx);
        throw new Error(`attempt ${ctx.attempt} failed`);
      });
      const id = (await enqueue(database, 'flaky', { secret: 'PAYLOAD-MARKER' }, { maxAttempts: 3 }))!;

      assert.equal(await runJobsUntilIdle(database), 1);
      let row = await job(database, id);
      assert.equal(row.state, 'queued');
      assert.equal(row.attempts, 1);
      assert.equal(row.last_error, 'attempt 1 failed');
      assert.equal(row.locked_by, null);
      // 2^1 s with equal jitter: between 1 and 2 seconds from now.
      assert.ok(row.delay_ms > 900 && row.delay_ms <= 2000, `delay ${row.delay_ms}`);
      assert.equal(await runJobsUntilIdle(database), 0, 'not due before its backoff');

      await makeDue(database, id);
      await runJobsUntilIdle(database);
      row = await job(database, id);
      assert.equal(row.state, 'queued');
      assert.ok(row.delay_ms > 1900 && row.delay_ms <= 4000, `delay ${row.delay_ms}`);

      await makeDue(database, id);
      await runJobsUntilIdle(database);
      row = await job(database, id);
      assert.equal(row.state, 'failed');
      assert.equal(row.attempts, 3);
      assert.ok(row.finished_at);
      assert.deepEqual(seen.map((c) => [c.jobId, c.attempt, c.maxAttempts]), [[id, 1, 3], [id, 2, 3], [id, 3, 3]]);
      assert.ok(!row.last_error?.includes('PAYLOAD-MARKER'));

      await makeDue(database, id);
      assert.equal(await runJobsUntilIdle(database), 0, 'a failed job is never claimed again');
    });

    await t.test('PermanentJobError fails the job at once', async () => {
      registerJobHandler('hopeless', async () => {
        throw new PermanentJobError('recipient does not exist');
      });
      const id = (await enqueue(database, 'hopeless', {}))!;
      await runJobsUntilIdle(database);
      const row = await job(database, id);
      assert.equal(row.state, 'failed');
      assert.equal(row.attempts, 1);
      assert.equal(row.last_error, 'recipient does not exist');
    });

    await t.test('a job whose worker died is taken over when the lease expires', async () => {
      const runs: number[] = [];
      registerJobHandler('orphan', async (_p, ctx) => {
        runs.push(ctx.attempt);
      });
      const id = (await enqueue(database, 'orphan', {}))!;
      // The first worker claims it and dies: it never finishes nor renews the lease.
      const [claimed] = await claimJobs(database, { workerId: 'dead', leaseMs: 300, limit: 10, kinds: ['orphan'] });
      assert.equal(claimed.id, id);

      assert.equal(await runJobsUntilIdle(database, { workerId: 'alive' }), 0, 'leased to the dead worker');
      await sleep(400);
      assert.equal(await runJobsUntilIdle(database, { workerId: 'alive' }), 1);
      assert.deepEqual(runs, [2]);
      const row = await job(database, id);
      assert.equal(row.state, 'done');
      assert.equal(row.attempts, 2);
    });

    await t.test('a job lost on its last attempt is failed, not run again', async () => {
      registerJobHandler('crashy', async () => assert.fail('must not run past max attempts'));
      const id = (await enqueue(database, 'crashy', {}, { maxAttempts: 1 }))!;
      await claimJobs(database, { workerId: 'dead', leaseMs: 1, limit: 10, kinds: ['crashy'] });
      await sleep(20);
      await runJobsUntilIdle(database);
      const row = await job(database, id);
      assert.equal(row.state, 'failed');
      assert.match(row.last_error ?? '', /worker lost the job on its last attempt/);
    });

    await t.test('concurrent workers never run the same job twice', async () => {
      const ran = new Map<number, number>();
      registerJobHandler('work', async (_p, ctx) => {
        ran.set(ctx.jobId, (ran.get(ctx.jobId) ?? 0) + 1);
        await sleep(Math.random() * 3);
      });
      const ids: number[] = [];
      for (let i = 0; i < 120; i++) ids.push((await enqueue(database, 'work', { i }))!);

      // On Postgres each Db is its own pool: two "machines" with three workers each.
      const second = url ? await openDb({ databaseUrl: url }) : database;
      try {
        const counts = await Promise.all(
          [database, database, database, second, second, second].map((d, i) => runJobsUntilIdle(d, { workerId: `w${i}` })),
        );
        assert.equal(counts.reduce((a, b) => a + b, 0), ids.length);
      } finally {
        if (second !== database) await second.close();
      }
      assert.deepEqual([...ran.keys()].sort((a, b) => a - b), ids);
      assert.ok([...ran.values()].every((n) => n === 1), 'each job ran exactly once');

      // And raw claims racing for the same rows never share one.
      for (let i = 0; i < 60; i++) await enqueue(database, 'work', { i });
      const batches = await Promise.all(
        Array.from({ length: 8 }, (_, i) => claimJobs(database, { workerId: `c${i}`, leaseMs: 60_000, limit: 10, kinds: ['work'] })),
      );
      const claimed = batches.flat().map((j) => j.id);
      assert.equal(new Set(claimed).size, claimed.length);
      assert.equal(claimed.length, 60);
    });

    await t.test('the worker loop: one per process, and stopWorker waits for jobs in flight', async () => {
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let started = false;
      let finished = false;
      registerJobHandler('slow', async () => {
        started = true;
        await released;
        finished = true;
      });
      const first = startWorker({ db: database, pollMs: 20, concurrency: 2, workerId: 'loop' });
      assert.equal(startWorker({ db: database, workerId: 'another' }), first, 'a second start returns the running loop');
      const id = (await enqueue(database, 'slow', {}))!;
      await waitFor(() => started, 'the slow job to start');

      const stopping = stopWorker();
      // Enqueued after the stop: the stopping worker must leave it alone.
      const late = (await enqueue(database, 'slow', {}, { dedupeKey: 'slow:late' }))!;
      let stopped = false;
      void stopping.then(() => (stopped = true));
      await sleep(100);
      assert.equal(stopped, false, 'stopWorker waits for the job in flight');
      release();
      await stopping;
      assert.equal(finished, true);
      assert.equal((await job(database, id)).state, 'done');
      assert.equal((await job(database, late)).state, 'queued');

      const next = startWorker({ db: database, pollMs: 20, workerId: 'loop-2' });
      assert.notEqual(next, first, 'after a stop a new loop may start');
      await next.stop();
    });

    await t.test('a schedule is enqueued once per period, whatever the number of instances', async () => {
      schedule('tick', 60_000);
      const at = new Date(Date.UTC(2030, 0, 1, 12, 0, 30));
      // Two instances reaching the same period.
      await enqueueScheduledJobs(database, at);
      await enqueueScheduledJobs(database, new Date(at.getTime() + 10_000));
      await enqueueScheduledJobs(database, new Date(at.getTime() + 60_000));
      const rows = await database.query<{ run_at: Date }>(`SELECT run_at FROM jobs WHERE kind = 'tick' AND run_at >= '2030-01-01' ORDER BY run_at`);
      assert.deepEqual(
        rows.rows.map((r) => r.run_at.toISOString()),
        ['2030-01-01T12:00:00.000Z', '2030-01-01T12:01:00.000Z'],
      );
    });
  });
}
