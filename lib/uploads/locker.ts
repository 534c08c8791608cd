/**
 * The tus locker. tus takes a lock per upload id around every request that reads or writes the
 * upload (POST, HEAD, PATCH, DELETE), so that two requests never write the same upload at once.
 *
 * One process (PGlite, the embedded default): tus's own MemoryLocker.
 *
 * Several instances on one PostgreSQL (DATABASE_URL): PostgreSQL session-level advisory locks,
 * `PostgresLocker`. The design:
 *
 * - One dedicated connection per process (not from the app's pool) holds every upload lock the
 *   process holds, with `pg_try_advisory_lock(key)`, key = the first 64 bits of
 *   SHA-256("inkast:tus-upload:" + id). A session-level lock lives as long as its connection:
 *   when a process dies (SIGKILL, OOM, a lost host once TCP keepalive notices) PostgreSQL ends
 *   its session and every lock it held is free again. Nothing has to expire or be cleaned up.
 * - Advisory locks are re-entrant within a session, so the process keeps its own table of the ids
 *   it holds or is acquiring: a second request in the same process waits for the first one, as
 *   with MemoryLocker, and never asks PostgreSQL.
 * - `requestRelease` across instances: a contender that finds the lock taken NOTIFYs
 *   `inkast_tus_locks` with `release:<its process token>:<id>`; every process LISTENs on that
 *   channel and calls the local holder's `requestRelease` (tus then ends that request after its
 *   lockDrainTimeout, 3 s), so a PATCH left behind by a dropped connection yields to the resumed
 *   one on another instance. A holder asked to yield NOTIFYs `free:…` when it unlocks, which wakes
 *   the waiters at once; otherwise they try again every ≤ 500 ms.
 * - Acquire timeout as MemoryLocker: `lock()` gives up after `acquireLockTimeout` (30 s), or when
 *   tus aborts the request's signal, with 423 Locked (tus-js-client and the browser client retry
 *   423). PostgreSQL unreachable: 503 with a one-line reason, never a hang (queries time out).
 * - Fail closed: when the lock connection breaks or a query on it errs or times out, the
 *   connection is dropped (so PostgreSQL frees whatever it held, whatever state the query was
 *   left in), every holder in this process is asked to yield, and the next lock() reconnects.
 *   Between the connection's loss and the holder's yield (≤ lockDrainTimeout) another instance may
 *   take the lock; tus's offset check (409) then refuses whichever request is behind.
 */
import crypto from 'node:crypto';
import { MemoryLocker, type Lock, type Locker, type RequestRelease } from '@tus/server';
import type pg from 'pg';

/** The LISTEN/NOTIFY channel of release requests and releases. */
export const LOCK_CHANNEL = 'inkast_tus_locks';

/** What a request that cannot get its lock answers (tus writes `status_code` and `body`). */
export class UploadLockError extends Error {
  override name = 'UploadLockError';
  constructor(
    readonly status_code: number,
    readonly body: string,
    options?: { cause?: unknown },
  ) {
    super(body.trim(), options);
  }
}

const lockTimeout = () =>
  new UploadLockError(423, 'The upload is busy with another request; try again shortly\n');
const lockUnavailable = (cause: unknown) =>
  new UploadLockError(503, 'The upload service is unavailable; try again shortly\n', { cause });

/** The advisory lock key of an upload id: a signed 64-bit integer, as text (pg's bigint). */
export function lockKey(id: string): string {
  return crypto.createHash('sha256').update(`inkast:tus-upload:${id}`).digest().readBigInt64BE(0).toString();
}

export interface PostgresLockerOptions {
  connectionString: string;
  /** Give up acquiring after this long (default 30 s, as MemoryLocker). */
  acquireLockTimeout?: number;
  /** Every query on the lock connection, and connecting, fails after this long (default 5 s). */
  queryTimeoutMs?: number;
  /** The longest pause between two attempts while waiting (default 500 ms). */
  maxPollMs?: number;
  /** How often a waiting contender repeats its release request (default 1 s). */
  releaseRequestIntervalMs?: number;
}

type Entry =
  | { state: 'acquiring' }
  | { state: 'held'; lock: PostgresLock; session: Session; requestRelease: RequestRelease; askedToYield: boolean };

/** The process's lock connection. Dead for good once lost; the locker opens a new one. */
class Session {
  alive = true;
  /** Ids whose lock this session holds. */
  readonly held = new Set<string>();

  constructor(
    private readonly client: pg.Client,
    private readonly locker: PostgresLocker,
  ) {}

  async tryLock(id: string): Promise<boolean> {
    const r = await this.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS got', [lockKey(id)]);
    return r.rows[0]?.got === true;
  }

  async unlock(id: string, announce: boolean): Promise<void> {
    if (announce) {
      await this.query('SELECT pg_advisory_unlock($1::bigint), pg_notify($2, $3)', [
        lockKey(id),
        LOCK_CHANNEL,
        `free:${this.locker.token}:${id}`,
      ]);
    } else {
      await this.query('SELECT pg_advisory_unlock($1::bigint)', [lockKey(id)]);
    }
  }

  async requestRelease(id: string): Promise<void> {
    await this.query('SELECT pg_notify($1, $2)', [LOCK_CHANNEL, `release:${this.locker.token}:${id}`]);
  }

  private async query<T>(sql: string, params: unknown[]): Promise<{ rows: T[] }> {
    if (!this.alive) throw new Error('the lock connection was lost');
    try {
      return (await this.client.query(sql, params)) as unknown as { rows: T[] };
    } catch (err) {
      // Whatever state the statement was left in (a timed-out try_lock may still succeed on the
      // server), ending the session frees every lock it holds: start again from a known state.
      this.destroy();
      throw err;
    }
  }

  /** Ends the session (idempotent); the locks it held are gone, their holders are asked to yield. */
  destroy(): void {
    if (!this.alive) return;
    this.alive = false;
    this.locker.sessionLost(this);
    this.client.end().catch(() => {});
  }
}

/**
 * A tus Locker on PostgreSQL advisory locks, shared by every instance on the same database.
 * One per process (the tus server is a process-wide singleton).
 */
export class PostgresLocker implements Locker {
  /** Tells this process's notifications from other processes'. */
  readonly token = crypto.randomBytes(6).toString('hex');
  readonly acquireLockTimeout: number;
  readonly maxPollMs: number;
  readonly releaseRequestIntervalMs: number;
  private readonly queryTimeoutMs: number;
  private readonly connectionString: string;
  /** Upload ids held or being acquired by this process. */
  readonly entries = new Map<string, Entry>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private session: Session | undefined;
  private connecting: Promise<Session> | undefined;
  private closed = false;

  constructor(opts: PostgresLockerOptions) {
    this.connectionString = opts.connectionString;
    this.acquireLockTimeout = opts.acquireLockTimeout ?? 30_000;
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 5_000;
    this.maxPollMs = opts.maxPollMs ?? 500;
    this.releaseRequestIntervalMs = opts.releaseRequestIntervalMs ?? 1_000;
  }

  newLock(id: string): Lock {
    return new PostgresLock(id, this);
  }

  /** The live lock connection, opened (and LISTENing) on first use or after a loss. */
  async connection(): Promise<Session> {
    if (this.closed) throw new Error('the locker is closed');
    if (this.session?.alive) return this.session;
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<Session> {
    const { default: pgModule } = await import('pg');
    const client = new pgModule.Client({
      connectionString: this.connectionString,
      application_name: 'inkast-tus-locker',
      connectionTimeoutMillis: this.queryTimeoutMs,
      query_timeout: this.queryTimeoutMs,
      // A peer that vanished without a FIN (host lost) is noticed on this side too.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    const session = new Session(client, this);
    // A server restart or a broken socket: never an unhandled 'error' that ends the process.
    client.on('error', () => session.destroy());
    client.on('end', () => session.destroy());
    client.on('notification', (msg) => {
      if (msg.channel === LOCK_CHANNEL && msg.payload) this.onNotification(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${LOCK_CHANNEL}`);
    } catch (err) {
      session.alive = false;
      await client.end().catch(() => {});
      throw err;
    }
    if (this.closed) {
      session.destroy();
      throw new Error('the locker is closed');
    }
    this.session = session;
    return session;
  }

  private onNotification(payload: string): void {
    const m = /^(release|free):([0-9a-f]+):(.+)$/.exec(payload);
    if (!m) return;
    const [, kind, token, id] = m;
    if (token === this.token) return; // local contenders and waiters are handled without PostgreSQL
    if (kind === 'free') return this.wake(id);
    const entry = this.entries.get(id);
    if (entry?.state === 'held') {
      entry.askedToYield = true;
      callRelease(entry.requestRelease);
    }
  }

  /** The session died: its locks are gone, so their holders must stop writing. */
  sessionLost(session: Session): void {
    if (this.session === session) this.session = undefined;
    for (const id of session.held) {
      const entry = this.entries.get(id);
      if (entry?.state === 'held' && entry.session === session) callRelease(entry.requestRelease);
    }
    session.held.clear();
  }

  wake(id: string): void {
    const set = this.waiters.get(id);
    if (!set) return;
    this.waiters.delete(id);
    for (const w of set) w();
  }

  /** Resolves after ms, on wake(id), or when signal aborts, whichever comes first. */
  pause(id: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      const waiting = set;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        waiting.delete(done);
        if (waiting.size === 0 && this.waiters.get(id) === waiting) this.waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      waiting.add(done);
    });
  }

  /** Ends the lock connection: every lock this process holds is released. */
  async close(): Promise<void> {
    this.closed = true;
    this.session?.destroy();
    await this.connecting?.catch(() => {});
  }
}

function callRelease(requestRelease: RequestRelease): void {
  try {
    Promise.resolve(requestRelease()).catch(() => {});
  } catch {
    // a failing callback must not break the locker
  }
}

class PostgresLock implements Lock {
  constructor(
    private readonly id: string,
    private readonly locker: PostgresLocker,
  ) {}

  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const { id, locker } = this;
    const deadline = Date.now() + locker.acquireLockTimeout;
    let pollMs = 25;
    let lastReleaseRequest = -Infinity;
    for (;;) {
      if (signal.aborted) throw lockTimeout();
      const entry = locker.entries.get(id);
      if (!entry) {
        locker.entries.set(id, { state: 'acquiring' });
        let session: Session | undefined;
        let got = false;
        try {
          session = await locker.connection();
          got = await session.tryLock(id);
        } catch (err) {
          throw lockUnavailable(err);
        } finally {
          if (!got) {
            locker.entries.delete(id);
            // Another local request may be waiting behind this attempt.
            locker.wake(id);
          }
        }
        if (!session.alive) {
          // Lost between the answer and here: the lock went with the session. Try again.
          locker.entries.delete(id);
          continue;
        }
        if (got) {
          if (signal.aborted) {
            // The request went away while we waited for the answer: give the lock straight back.
            await session.unlock(id, false).catch(() => {});
            locker.entries.delete(id);
            locker.wake(id);
            throw lockTimeout();
          }
          locker.entries.set(id, { state: 'held', lock: this, session, requestRelease, askedToYield: false });
          session.held.add(id);
          return;
        }
        // Another instance holds it: ask it to yield (again every releaseRequestIntervalMs).
        if (Date.now() - lastReleaseRequest >= locker.releaseRequestIntervalMs) {
          lastReleaseRequest = Date.now();
          await session.requestRelease(id).catch(() => {});
        }
      } else if (entry.state === 'held') {
        // A request in this process holds it: ask it to yield, as MemoryLocker does.
        callRelease(entry.requestRelease);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw lockTimeout();
      await locker.pause(id, Math.min(pollMs, left), signal);
      pollMs = Math.min(pollMs * 2, locker.maxPollMs);
    }
  }

  async unlock(): Promise<void> {
    const { id, locker } = this;
    const entry = locker.entries.get(id);
    if (entry?.state !== 'held' || entry.lock !== this) throw new Error('Releasing an unlocked lock!');
    try {
      if (entry.session.alive) {
        // A failure ends the session, which frees the lock just the same.
        await entry.session.unlock(id, entry.askedToYield).catch(() => {});
      }
    } finally {
      entry.session.held.delete(id);
      locker.entries.delete(id);
      locker.wake(id);
    }
  }
}

/**
 * The locker for this process: advisory locks on PostgreSQL when there is one (several instances
 * may serve the same upload), else tus's MemoryLocker (PGlite: one process owns the data).
 */
export function createUploadLocker(opts: { databaseUrl: string | undefined; acquireLockTimeout?: number }): Locker {
  const acquireLockTimeout = opts.acquireLockTimeout ?? 30_000;
  if (!opts.databaseUrl) return new MemoryLocker({ acquireLockTimeout });
  return new PostgresLocker({ connectionString: opts.databaseUrl, acquireLockTimeout });
}
