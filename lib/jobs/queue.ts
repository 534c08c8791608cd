/**
 * The `jobs` table as a queue: enqueue, claim under a lease, and settle. Any number of workers on
 * any number of machines share it; `FOR UPDATE SKIP LOCKED` keeps them off each other's rows.
 */
import type { Queryable } from '@/lib/db';

/** A job's payload: plain JSON, stored as jsonb. Never put health data in it (it is not encrypted). */
export type JobPayload = Record<string, unknown>;

/** Thrown by a handler when retrying cannot help: the job fails at once, without backoff. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

export interface EnqueueOptions {
  /** At most one job ever exists per key (a finished one included): repeats are ignored. */
  dedupeKey?: string;
  /** Not before this time (default: now). */
  runAt?: Date;
  /** Attempts before the job is given up as failed (default 10, the table's default). */
  maxAttempts?: number;
}

/**
 * Adds a job. Pass the caller's transaction as `q` to make the job part of the event that causes
 * it (outbox pattern). Returns the new job's id, or undefined when the dedupe key already exists.
 */
export async function enqueue(
  q: Queryable,
  kind: string,
  payload: JobPayload,
  opts: EnqueueOptions = {},
): Promise<number | undefined> {
  const r = await q.query<{ id: number }>(
    `INSERT INTO jobs (kind, payload, dedupe_key, run_at, max_attempts)
     VALUES ($1, $2::text::jsonb, $3, COALESCE($4::timestamptz, now()), COALESCE($5::int, 10))
     ON CONFLICT (dedupe_key) DO NOTHING
     RETURNING id`,
    [kind, JSON.stringify(payload), opts.dedupeKey ?? null, opts.runAt ?? null, opts.maxAttempts ?? null],
  );
  return r.rows.length ? Number(r.rows[0].id) : undefined;
}

/** A job a worker holds: it alone may settle it while `attempts` is unchanged and the lease holds. */
export interface ClaimedJob {
  id: number;
  kind: string;
  payload: JobPayload;
  /** This attempt's number, from 1; also the fencing token against a worker that lost its lease. */
  attempts: number;
  maxAttempts: number;
}

export interface ClaimOptions {
  workerId: string;
  leaseMs: number;
  limit: number;
  /** Only kinds this process can run, so a worker never burns attempts on a job it has no handler for. */
  kinds: string[];
}

/**
 * Claims up to `limit` due jobs: queued ones whose time has come, and running ones whose worker's
 * lease ran out (that worker died or hung, so the job is taken over).
 */
export async function claimJobs(q: Queryable, opts: ClaimOptions): Promise<ClaimedJob[]> {
  if (opts.kinds.length === 0 || opts.limit <= 0) return [];
  const r = await q.query<{ id: number; kind: string; payload: JobPayload; attempts: number; max_attempts: number }>(
    `UPDATE jobs
        SET state = 'running', locked_by = $1,
            locked_until = now() + $2::double precision * interval '1 millisecond',
            attempts = attempts + 1
      WHERE id IN (
        SELECT id FROM jobs
         WHERE ((state = 'queued' AND run_at <= now()) OR (state = 'running' AND locked_until < now()))
           AND kind = ANY($3::text[])
         ORDER BY run_at
         FOR UPDATE SKIP LOCKED
         LIMIT $4)
      RETURNING id, kind, payload, attempts, max_attempts`,
    [opts.workerId, opts.leaseMs, opts.kinds, opts.limit],
  );
  return r.rows.map((j) => ({
    id: Number(j.id),
    kind: j.kind,
    payload: j.payload,
    attempts: j.attempts,
    maxAttempts: j.max_attempts,
  }));
}

// Every settling statement is fenced on (id, locked_by, attempts): a worker whose lease expired and
// whose job was taken over cannot overwrite the newer attempt's outcome.
const OWNED = `id = $1 AND locked_by = $2 AND attempts = $3 AND state = 'running'`;

/** Pushes the lease forward while a long job (verifying 5 GB) is still being worked on. */
export async function extendLease(q: Queryable, job: ClaimedJob, workerId: string, leaseMs: number): Promise<boolean> {
  const r = await q.query(
    `UPDATE jobs SET locked_until = now() + $4::double precision * interval '1 millisecond' WHERE ${OWNED}`,
    [job.id, workerId, job.attempts, leaseMs],
  );
  return r.rowCount > 0;
}

export async function completeJob(q: Queryable, job: ClaimedJob, workerId: string): Promise<void> {
  await q.query(
    `UPDATE jobs SET state = 'done', finished_at = now(), locked_by = NULL, locked_until = NULL, last_error = NULL
      WHERE ${OWNED}`,
    [job.id, workerId, job.attempts],
  );
}

const MAX_BACKOFF_MS = 3600_000;
const MAX_ERROR_LENGTH = 1000;

/** 2^attempt seconds, capped at an hour, with "equal jitter" so retries of many jobs spread out. */
export function retryDelayMs(attempt: number): number {
  const base = Math.min(2 ** attempt * 1000, MAX_BACKOFF_MS);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * Records a failed attempt: back to the queue with backoff, or failed for good when the error is
 * permanent or the attempts are used up. Only the error's message is kept, never the payload.
 */
export async function failJob(q: Queryable, job: ClaimedJob, workerId: string, err: unknown): Promise<'queued' | 'failed'> {
  const message = (err instanceof Error ? err.message : String(err)).slice(0, MAX_ERROR_LENGTH);
  const final = err instanceof PermanentJobError || job.attempts >= job.maxAttempts;
  await q.query(
    `UPDATE jobs
        SET state = $4, last_error = $5, locked_by = NULL, locked_until = NULL,
            run_at = CASE WHEN $4 = 'queued' THEN now() + $6::double precision * interval '1 millisecond' ELSE run_at END,
            finished_at = CASE WHEN $4 = 'failed' THEN now() END
      WHERE ${OWNED}`,
    [job.id, workerId, job.attempts, final ? 'failed' : 'queued', message, retryDelayMs(job.attempts)],
  );
  return final ? 'failed' : 'queued';
}
