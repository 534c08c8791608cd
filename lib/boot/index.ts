/**
 * Start-up and shutdown of a process: the database (migrated), the object store, the first
 * administrator, the job handlers and, where this process runs one, the worker loop.
 */
import { consoleSignInLink } from '@/lib/auth/links';
import { config } from '@/lib/config';
import { closeDb, db } from '@/lib/db';
import { registerDeliveryJobs } from '@/lib/deliveries';
import { registerRetentionJob, RETENTION_JOB } from '@/lib/deliveries/retention';
import { schedule, startWorker, stopWorker } from '@/lib/jobs';
import { registerMailJobs } from '@/lib/mail';
import { ensureFirstAdmin, filedropUrl, personalMailbox, findUserByEmail } from '@/lib/mailboxes';
import { objectStore } from '@/lib/storage';
import { closeUploads } from '@/lib/uploads';

const g = globalThis as typeof globalThis & { __inkastBoot?: Promise<void> };

const HOUR = 3600_000;

export interface BootOptions {
  worker: boolean;
  /** Print where to go (the app and the worker do; CLI commands stay quiet for --json). */
  announce?: boolean;
  /** This process serves the web app (a sign-in link is worth printing). */
  web?: boolean;
}

async function boot(opts: BootOptions): Promise<void> {
  const c = config();
  await db();
  await objectStore().ensureReady();
  const created = await ensureFirstAdmin();
  registerDeliveryJobs();
  registerRetentionJob();
  registerMailJobs();
  if (opts.worker) {
    schedule('expire-abandoned-deliveries', HOUR);
    schedule(RETENTION_JOB, HOUR);
    startWorker({ leaseMs: c.jobLeaseMs });
  }
  if (!opts.announce) return;
  const admin = created
    ? { userId: created.user.id, email: created.user.email, slug: created.mailbox.filedrop_slug }
    : await adminWithLink();
  const lines = [
    `Inkast is running at ${c.publicUrl}`,
    `  database: ${c.databaseUrl ? 'PostgreSQL' : `PGlite in ${c.dataDir}/pglite`}`,
    `  objects:  ${c.s3 ? `S3 bucket ${c.s3.bucket}` : `${c.dataDir}/objects`} (ciphertext only)`,
    `  mail:     ${c.smtpUrl ? 'SMTP' : 'kept in the outbox (no SMTP_URL set)'}`,
    `  worker:   ${opts.worker ? 'in this process' : 'not in this process (run `npm run worker`)'}`,
  ];
  if (admin) {
    lines.push(
      created ? `First start: created the administrator ${admin.email}.` : `Administrator: ${admin.email}`,
      `  Try the administrator's filedrop link: ${filedropUrl(admin.slug)}`,
    );
    // Without SMTP a sign-in link could only reach the outbox, which needs a signed-in admin.
    if (!c.smtpUrl && opts.web) {
      lines.push(`  Sign in as the administrator (single use, 15 minutes): ${await consoleSignInLink(admin.userId)}`);
    }
  }
  console.log(lines.join('\n'));
}

async function adminWithLink(): Promise<{ userId: string; email: string; slug: string } | undefined> {
  const user = await findUserByEmail(config().adminEmail);
  const mailbox = user && (await personalMailbox(user.id));
  return user && mailbox ? { userId: user.id, email: user.email, slug: mailbox.filedrop_slug } : undefined;
}

/** Boots once per process, whichever module copy asks first. */
export function bootProcess(opts: BootOptions = { worker: config().runWorker, announce: true, web: true }): Promise<void> {
  g.__inkastBoot ??= boot(opts);
  return g.__inkastBoot;
}

/** Stops taking work, lets in-flight jobs finish and closes the database. */
export async function shutdownProcess(): Promise<void> {
  await stopWorker();
  await closeUploads();
  await closeDb();
}

/** Graceful SIGTERM/SIGINT (next start needs NEXT_MANUAL_SIG_HANDLE=true for this to run). */
export function handleSignals(): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: finishing in-flight work, then exiting`);
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    shutdownProcess().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
