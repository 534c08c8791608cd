/**
 * Background jobs (verify, notify, receipt, mail, retention, cleanup): handlers, periodic
 * schedules and the worker loop over the queue in `./queue`.
 */
import os from 'node:os';
import crypto from 'node:crypto';
import { config } from '@/lib/config';
import { logger, type Logger } from '@/lib/log';
import { db, type Db, type Queryable } from '@/lib/db';
import {
  claimJobs,
  completeJob,
  enqueue,
  extendLease,
  failJob,
  PermanentJobError,
  type ClaimedJob,
  type JobPayload,
} from './queue';

export { enqueue, PermanentJobError, type EnqueueOptions, type JobPayload } from './queue';

export interface JobContext {
  jobId: number;
  /** 1 on the first run. */
  attempt: number;
  /** After this attempt fails the job is given up, so a handler can record the final failure. */
  maxAttempts: number;
  /** The database the job was claimed from (the process's one, or a test's). */
  db: Db;
}

export type JobHandler<P extends JobPayload = JobPayload> = (payload: P, ctx: JobContext) => Promise<void>;

export interface WorkerOptions {
  /** How long to wait before looking again when the queue is empty (default 1 s). */
  pollMs?: number;
  /** Jobs run at once by this process (default 4). */
  concurrency?: number;
  /** A job whose worker has not renewed the lease for this long is taken over (default 5 min). */
  leaseMs?: number;
  workerId?: string;
  db?: Db;
}

export interface WorkerHandle {
  readonly workerId: string;
  /** Takes no new work and resolves when the jobs in flight have finished. */
  stop(): Promise<void>;
}

interface Worker {
  handle: WorkerHandle;
  stopping: boolean;
  stopped: Promise<void> | undefined;
  wake: () => void;
}

// Next evaluates modules twice per process (instrumentation, route handlers): handlers, schedules
// and the one worker loop live on globalThis so both copies see the same ones.
const g = globalThis as typeof globalThis & {
  __inkastJobHandlers?: Map<string, JobHandler>;
  __inkastJobSchedules?: Map<string, number>;
  __inkastJobWorker?: Worker;
  __inkastJobsLog?: Logger;
};
const handlers = () => (g.__inkastJobHandlers ??= new Map());
const schedules = () => (g.__inkastJobSchedules ??= new Map());
const log = () => (g.__inkastJobsLog ??= logger('jobs'));

/** Sets the handler for a kind (replacing an earlier one). Only registered kinds are claimed. */
export function registerJobHandler<P extends JobPayload>(kind: string, handler: JobHandler<P>): void {
  handlers().set(kind, handler as JobHandler);
}

/**
 * Makes `kind` run once every `everyMs` (payload `{}`). Every instance's worker enqueues the
 * current period with the same dedupe key, so the job exists once however many instances run.
 */
export function schedule(kind: string, everyMs: number): void {
  if (!(everyMs >= 1000)) throw new RangeError(`schedule(${kind}): everyMs must be at least 1000`);
  schedules().set(kind, everyMs);
}

/**
 * Enqueues the current period of every schedule (idempotent; the worker calls it as it polls,
 * a cron-driven CLI may too). `enqueued` remembers periods already done by this caller.
 */
export async function enqueueScheduledJobs(q: Queryable, at = new Date(), enqueued?: Map<string, number>): Promise<void> {
  for (const [kind, everyMs] of schedules()) {
    const period = Math.floor(at.getTime() / everyMs);
    if (enqueued?.get(kind) === period) continue;
    await enqueue(q, kind, {}, { dedupeKey: `schedule:${kind}:${everyMs}:${period}`, runAt: new Date(period * everyMs) });
    enqueued?.set(kind, period);
  }
}

const DEFAULT_LEASE_MS = 5 * 60_000;

/** Runs one claimed job to its end and settles it; never throws (a lost settle is retried by lease expiry). */
async function runClaimedJob(database: Db, job: ClaimedJob, workerId: string, leaseMs: number): Promise<void> {
  const handler = handlers().get(job.kind);
  const fields = { jobId: job.id, kind: job.kind, attempt: job.attempts };
  try {
    // Past its last attempt only when the worker running that attempt died: give up rather than loop.
    if (!handler || job.attempts > job.maxAttempts) {
      const reason = handler ? 'worker lost the job on its last attempt' : `no handler for ${job.kind}`;
      await failJob(database, job, workerId, new PermanentJobError(reason));
      log().error(fields, reason);
      return;
    }
    const heartbeat = setInterval(() => {
      extendLease(database, job, workerId, leaseMs).catch((err: unknown) =>
        log().warn({ ...fields, err: errorMessage(err) }, 'lease renewal failed'),
      );
    }, leaseMs / 3);
    try {
      await handler(job.payload, { jobId: job.id, attempt: job.attempts, maxAttempts: job.maxAttempts, db: database });
    } catch (err) {
      const outcome = await failJob(database, job, workerId, err);
      log()[outcome === 'failed' ? 'error' : 'warn']({ ...fields, outcome, err: errorMessage(err) }, 'job failed');
      return;
    } finally {
      clearInterval(heartbeat);
    }
    await completeJob(database, job, workerId);
  } catch (err) {
    log().error({ ...fields, err: errorMessage(err) }, 'could not settle job; it is retried when its lease expires');
  }
}

const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

function defaultWorkerId(): string {
  return `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;
}

/**
 * Starts this process's worker loop, or returns the running one (one loop per process).
 * It also enqueues scheduled jobs as their periods come.
 */
export function startWorker(opts: WorkerOptions = {}): WorkerHandle {
  if (g.__inkastJobWorker) return g.__inkastJobWorker.handle;
  const pollMs = opts.pollMs ?? 1000;
  const concurrency = opts.concurrency ?? 4;
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const workerId = opts.workerId ?? defaultWorkerId();
  const inFlight = new Set<Promise<void>>();
  const periods = new Map<string, number>();

  const worker: Worker = {
    stopping: false,
    stopped: undefined,
    wake: () => {},
    handle: {
      workerId,
      stop() {
        worker.stopping = true;
        if (g.__inkastJobWorker === worker) g.__inkastJobWorker = undefined;
        worker.wake();
        return (worker.stopped ??= loop.then(() => Promise.all(inFlight)).then(() => {}));
      },
    },
  };
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => worker.wake(), ms);
      worker.wake = () => {
        clearTimeout(timer);
        worker.wake = () => {};
        resolve();
      };
    });

  const loop = (async () => {
    let database: Db | undefined = opts.db;
    while (!worker.stopping) {
      const free = concurrency - inFlight.size;
      let claimed = 0;
      try {
        database ??= await db();
        await enqueueScheduledJobs(database, new Date(), periods);
        const jobs = await claimJobs(database, { workerId, leaseMs, limit: free, kinds: [...handlers().keys()] });
        for (const job of jobs) {
          const run = runClaimedJob(database, job, workerId, leaseMs).finally(() => {
            inFlight.delete(run);
            worker.wake();
          });
          inFlight.add(run);
        }
        claimed = jobs.length;
      } catch (err) {
        log().error({ err: errorMessage(err) }, 'worker could not poll the job queue');
      }
      // Claim again at once while every free slot was filled; otherwise wait for a slot or the poll.
      if (!worker.stopping && (free === 0 || claimed < free)) await pause(pollMs);
    }
  })();

  g.__inkastJobWorker = worker;
  return worker.handle;
}

/** Stops this process's worker, if one runs, and waits for its in-flight jobs (graceful shutdown). */
export async function stopWorker(): Promise<void> {
  await g.__inkastJobWorker?.handle.stop();
}

/**
 * Claims and runs due jobs one at a time until none is left; returns how many ran. For tests
 * and the CLI. A job that fails is requeued in the future, so it does not keep this looping.
 */
export async function runJobsUntilIdle(database?: Db, opts: { workerId?: string; leaseMs?: number } = {}): Promise<number> {
  const d = database ?? (await db());
  const workerId = opts.workerId ?? defaultWorkerId();
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  let ran = 0;
  for (;;) {
    const [job] = await claimJobs(d, { workerId, leaseMs, limit: 1, kinds: [...handlers().keys()] });
    if (!job) return ran;
    await runClaimedJob(d, job, workerId, leaseMs);
    ran++;
  }
}
