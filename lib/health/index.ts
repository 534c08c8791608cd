/**
 * Readiness: can this instance do its work right now? Checks the database (`SELECT 1`), the
 * object store (HeadBucket on S3; the objects directory exists and is writable locally) and,
 * when SMTP_URL is set, the mail server (connect, EHLO, login: nodemailer's verify).
 *
 * Cheap enough for a load balancer to ask every few seconds: each check is bounded by a short
 * timeout, concurrent callers share one run, and a result is reused for a few seconds. The answer
 * names each check and its outcome only — never a host, a user, a bucket or an error's text
 * (those go to the log, at warn).
 */
import fsp from 'node:fs/promises';
import fs from 'node:fs';
import { config } from '@/lib/config';
import { logger, type Logger } from '@/lib/log';
import { db } from '@/lib/db';
import { objectStore, objectStoreSettings, type ObjectStore, type S3ObjectStore } from '@/lib/storage';

export const CHECK_NAMES = ['database', 'storage', 'mail'] as const;
export type CheckName = (typeof CHECK_NAMES)[number];
/** `skipped`: not configured (mail without SMTP_URL), so it cannot fail. */
export type CheckOutcome = 'ok' | 'failed' | 'skipped';

export interface Readiness {
  status: 'ready' | 'not-ready';
  checks: Partial<Record<CheckName, CheckOutcome>>;
}

/** How long one check may take before it counts as failed. */
export const CHECK_TIMEOUT_MS = 3_000;
/** How long a passing result is reused. */
export const OK_TTL_MS = 5_000;
/** How long a failing result is reused (shorter: recovery should show quickly). */
export const FAILED_TTL_MS = 1_000;

type Probe = () => Promise<CheckOutcome>;

interface Cached {
  at: number;
  outcome: CheckOutcome;
}

// Next evaluates modules twice per process: keep the cache on globalThis like the other singletons.
interface HealthState {
  cache: Map<CheckName, Cached>;
  running: Map<CheckName, Promise<CheckOutcome>>;
  log?: Logger;
}
const g = globalThis as typeof globalThis & { __inkastHealth?: HealthState };
const state = (): HealthState => (g.__inkastHealth ??= { cache: new Map(), running: new Map() });
const log = () => (state().log ??= logger('health'));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
      timer.unref?.();
    }),
  ]);
}

const probes: Record<CheckName, Probe> = {
  async database() {
    await (await db()).query('SELECT 1');
    return 'ok';
  },

  async storage() {
    const settings = objectStoreSettings();
    if (settings.kind === 'local') {
      // No probe file: the objects directory holds tus uploads only. A read-only mount fails this.
      if (!(await fsp.stat(settings.directory)).isDirectory()) throw new Error('the objects path is not a directory');
      await fsp.access(settings.directory, fs.constants.R_OK | fs.constants.W_OK);
      return 'ok';
    }
    // Structurally, not with instanceof: Next evaluates lib/storage twice per process (instrumentation,
    // route handlers), so the process's store may be an instance of the other copy's class.
    const store = objectStore() as ObjectStore & Partial<Pick<S3ObjectStore, 'client' | 'bucket'>>;
    if (store.kind !== 's3' || !store.client || !store.bucket) throw new Error('the S3 object store has no client');
    const { HeadBucketCommand } = await import('@aws-sdk/client-s3');
    await store.client.send(new HeadBucketCommand({ Bucket: store.bucket }), {
      abortSignal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
    });
    return 'ok';
  },

  async mail() {
    const { smtpUrl } = config();
    if (!smtpUrl) return 'skipped';
    const nodemailer = (await import('nodemailer')).default;
    const transport = nodemailer.createTransport({
      url: smtpUrl,
      connectionTimeout: CHECK_TIMEOUT_MS,
      greetingTimeout: CHECK_TIMEOUT_MS,
      socketTimeout: CHECK_TIMEOUT_MS,
    });
    try {
      await transport.verify();
    } finally {
      transport.close();
    }
    return 'ok';
  },
};

async function runCheck(name: CheckName): Promise<CheckOutcome> {
  const s = state();
  const hit = s.cache.get(name);
  if (hit && Date.now() - hit.at < (hit.outcome === 'failed' ? FAILED_TTL_MS : OK_TTL_MS)) return hit.outcome;
  let running = s.running.get(name);
  if (!running) {
    running = withTimeout(probes[name](), CHECK_TIMEOUT_MS)
      .catch((err: unknown) => {
        // Details for the operator's log only; the HTTP answer says "failed" and nothing more.
        log().warn({ check: name, err: err instanceof Error ? err.message : String(err) }, 'readiness check failed');
        return 'failed' as const;
      })
      .then((outcome) => {
        s.cache.set(name, { at: Date.now(), outcome });
        s.running.delete(name);
        return outcome;
      });
    s.running.set(name, running);
  }
  return running;
}

/** Runs (or reuses) the named checks, all by default, in parallel. */
export async function readiness(names: readonly CheckName[] = CHECK_NAMES): Promise<Readiness> {
  const outcomes = await Promise.all(names.map(runCheck));
  const checks: Readiness['checks'] = {};
  names.forEach((n, i) => (checks[n] = outcomes[i]));
  return { status: outcomes.includes('failed') ? 'not-ready' : 'ready', checks };
}

/**
 * Reads `?checks=database,storage` (a subset, e.g. for a load balancer that should not take every
 * instance out of service while only the mail server is down). Undefined when a name is unknown.
 */
export function parseCheckNames(param: string | null): CheckName[] | undefined {
  if (param === null || param.trim() === '') return [...CHECK_NAMES];
  const names = [...new Set(param.split(',').map((s) => s.trim()))];
  if (!names.every((n): n is CheckName => (CHECK_NAMES as readonly string[]).includes(n))) return undefined;
  return names;
}

/** Forgets cached results (tests). */
export function resetReadiness(): void {
  const s = state();
  s.cache.clear();
}
