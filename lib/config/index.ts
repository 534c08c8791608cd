import path from 'node:path';
import { z } from 'zod';

/** Thrown when the environment holds a value Inkast cannot run with; names the variable. */
export class ConfigError extends Error {}

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** A rate limit: at most `points` per `durationMs` (points are bytes for the upload limit), or null (off). */
export interface RateLimitSpec {
  points: number;
  durationMs: number;
}

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const AMOUNT_UNITS: Record<string, number> = { '': 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12 };

/** `<amount>/<window>` such as `100/1h` or `200GB/1d`, or `off`. */
const rateLimit = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx): RateLimitSpec | null => {
      if (/^(off|none|0)$/i.test(v.trim())) return null;
      const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*\/\s*(\d+)\s*([smhd])\s*$/i.exec(v);
      const unit = m && AMOUNT_UNITS[m[2].toLowerCase()];
      const points = m && unit ? Math.round(Number(m[1]) * unit) : 0;
      const durationMs = m ? Number(m[3]) * DURATION_UNITS[m[4].toLowerCase()] : 0;
      if (!points || !durationMs || !Number.isSafeInteger(points)) {
        ctx.addIssue({ code: 'custom', message: 'must be <amount>/<window> such as 100/1h or 200GB/1d, or off' });
        return z.NEVER;
      }
      return { points, durationMs };
    });

const schema = z.object({
  INKAST_DATA_DIR: z.string().min(1).default('./data'),
  INKAST_PUBLIC_URL: z.url().optional(),
  PORT: z.coerce.number().int().min(1).max(65535).default(3000),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  INKAST_MASTER_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
    .optional(),
  // During a master key rotation: the key being replaced, still accepted for unwrapping.
  INKAST_MASTER_KEY_PREVIOUS: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded')
    .optional(),
  INKAST_SESSION_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  S3_ENDPOINT: z.url().optional(),
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid bucket name').optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: bool.default(true),
  // Many S3-compatible stores (Ceph RGW 16 among them) reject aws-chunked trailing checksums.
  S3_CHECKSUM: z.enum(['WHEN_REQUIRED', 'WHEN_SUPPORTED']).default('WHEN_REQUIRED'),
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional(),
  MAIL_FROM: z.string().min(3).default('Inkast <inkast@inkast.localhost>'),
  INKAST_ADMIN_EMAIL: z.email().default('admin@inkast.localhost'),
  INKAST_WORKER: bool.default(true),
  // A running job whose worker stops renewing its lease (it died) is taken over after this long.
  INKAST_JOB_LEASE_MS: z.coerce.number().int().min(1000).max(3_600_000).default(300_000),
  INKAST_UPLOAD_TOKEN_TTL_HOURS: z.coerce.number().positive().default(48),
  INKAST_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Malware scanning by clamd (lib/scan) when CLAMAV_SOCKET or CLAMAV_HOST is set; off otherwise.
  CLAMAV_SOCKET: z.string().min(1).optional(),
  CLAMAV_HOST: z.string().min(1).optional(),
  CLAMAV_PORT: z.coerce.number().int().min(1).max(65535).default(3310),
  // Bytes of each file streamed to clamd: at most clamd's StreamMaxLength (its default is 100M).
  CLAMAV_MAX_BYTES: z.coerce.number().int().min(1024).default(100 * 1024 * 1024),
  CLAMAV_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(120_000),
  // Behind a reverse proxy that sets X-Forwarded-For/-Proto (overwriting a client's own): believe them.
  // The rate limits then key on the first X-Forwarded-For entry, else on the TCP peer.
  INKAST_TRUST_PROXY: bool.default(false),
  // Rate limits (lib/ratelimit), shared by every instance through PostgreSQL when DATABASE_URL is set.
  INKAST_RATE_DELIVERIES_PER_IP: rateLimit('100/1h'),
  INKAST_RATE_UPLOAD_BYTES_PER_IP: rateLimit('200GB/1d'),
  INKAST_RATE_CODES_PER_ADDRESS: rateLimit('5/1h'),
  INKAST_RATE_CODES_PER_IP: rateLimit('30/1h'),
  INKAST_RATE_CODE_CHECKS_PER_IP: rateLimit('60/1h'),
  INKAST_RATE_SIGN_IN_PER_ADDRESS: rateLimit('10/1h'),
  INKAST_RATE_SIGN_IN_PER_IP: rateLimit('50/1h'),
  // OpenID Connect sign-in (beside the email link) when OIDC_ISSUER is set.
  OIDC_ISSUER: z.url().optional(),
  OIDC_CLIENT_ID: z.string().min(1).optional(),
  OIDC_CLIENT_SECRET: z.string().min(1).optional(),
  OIDC_USER_CLAIM: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'must be a claim name').default('email'),
  OIDC_SCOPES: z
    .string()
    .default('openid email')
    .refine((v) => v.split(/\s+/).includes('openid'), 'must include openid'),
});

export type Env = z.infer<typeof schema>;

export interface Config {
  dataDir: string;
  publicUrl: string;
  port: number;
  databaseUrl: string | undefined;
  masterKey: Buffer | undefined;
  masterKeyPrevious: Buffer | undefined;
  sessionSecret: string | undefined;
  s3:
    | {
        endpoint: string | undefined;
        bucket: string;
        region: string;
        accessKeyId: string | undefined;
        secretAccessKey: string | undefined;
        forcePathStyle: boolean;
        checksum: 'WHEN_REQUIRED' | 'WHEN_SUPPORTED';
      }
    | undefined;
  smtpUrl: string | undefined;
  mailFrom: string;
  adminEmail: string;
  runWorker: boolean;
  jobLeaseMs: number;
  uploadTokenTtlMs: number;
  logLevel: Env['INKAST_LOG_LEVEL'];
  clamav:
    | {
        target: { socket: string } | { host: string; port: number };
        maxBytes: number;
        timeoutMs: number;
      }
    | undefined;
  trustProxy: boolean;
  rateLimits: {
    deliveriesPerIp: RateLimitSpec | null;
    uploadBytesPerIp: RateLimitSpec | null;
    codesPerAddress: RateLimitSpec | null;
    codesPerIp: RateLimitSpec | null;
    codeChecksPerIp: RateLimitSpec | null;
    signInPerAddress: RateLimitSpec | null;
    signInPerIp: RateLimitSpec | null;
  };
  oidc:
    | {
        issuer: string;
        clientId: string;
        /** Absent for a public client (PKCE only). */
        clientSecret: string | undefined;
        /** The claim whose value must equal a user's email address. */
        userClaim: string;
        scopes: string;
      }
    | undefined;
}

/** Parses an environment into a Config; throws ConfigError naming every bad variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "not set", as they do in most .env files.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = result.data;
  if (e.S3_BUCKET === undefined && e.S3_ENDPOINT !== undefined) {
    throw new ConfigError('Invalid configuration:\n  S3_BUCKET: required when S3_ENDPOINT is set');
  }
  if (e.OIDC_ISSUER !== undefined && e.OIDC_CLIENT_ID === undefined) {
    throw new ConfigError('Invalid configuration:\n  OIDC_CLIENT_ID: required when OIDC_ISSUER is set');
  }
  // Plain http only for an issuer on this machine (tests, development).
  if (e.OIDC_ISSUER !== undefined && !/^https:|^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(\/|$)/.test(e.OIDC_ISSUER)) {
    throw new ConfigError('Invalid configuration:\n  OIDC_ISSUER: must be an https:// URL');
  }
  const accessKeyId = e.S3_ACCESS_KEY_ID ?? cleaned.AWS_ACCESS_KEY_ID;
  const secretAccessKey = e.S3_SECRET_ACCESS_KEY ?? cleaned.AWS_SECRET_ACCESS_KEY;
  return {
    dataDir: path.resolve(e.INKAST_DATA_DIR),
    publicUrl: (e.INKAST_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    masterKey: e.INKAST_MASTER_KEY ? Buffer.from(e.INKAST_MASTER_KEY, 'base64') : undefined,
    masterKeyPrevious: e.INKAST_MASTER_KEY_PREVIOUS ? Buffer.from(e.INKAST_MASTER_KEY_PREVIOUS, 'base64') : undefined,
    sessionSecret: e.INKAST_SESSION_SECRET,
    s3: e.S3_BUCKET
      ? {
          endpoint: e.S3_ENDPOINT,
          bucket: e.S3_BUCKET,
          region: e.S3_REGION,
          accessKeyId,
          secretAccessKey,
          forcePathStyle: e.S3_FORCE_PATH_STYLE,
          checksum: e.S3_CHECKSUM,
        }
      : undefined,
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM,
    adminEmail: e.INKAST_ADMIN_EMAIL,
    runWorker: e.INKAST_WORKER,
    jobLeaseMs: e.INKAST_JOB_LEASE_MS,
    uploadTokenTtlMs: e.INKAST_UPLOAD_TOKEN_TTL_HOURS * 3600_000,
    logLevel: e.INKAST_LOG_LEVEL,
    clamav:
      e.CLAMAV_SOCKET || e.CLAMAV_HOST
        ? {
            target: e.CLAMAV_SOCKET ? { socket: e.CLAMAV_SOCKET } : { host: e.CLAMAV_HOST!, port: e.CLAMAV_PORT },
            maxBytes: e.CLAMAV_MAX_BYTES,
            timeoutMs: e.CLAMAV_TIMEOUT_MS,
          }
        : undefined,
    trustProxy: e.INKAST_TRUST_PROXY,
    rateLimits: {
      deliveriesPerIp: e.INKAST_RATE_DELIVERIES_PER_IP,
      uploadBytesPerIp: e.INKAST_RATE_UPLOAD_BYTES_PER_IP,
      codesPerAddress: e.INKAST_RATE_CODES_PER_ADDRESS,
      codesPerIp: e.INKAST_RATE_CODES_PER_IP,
      codeChecksPerIp: e.INKAST_RATE_CODE_CHECKS_PER_IP,
      signInPerAddress: e.INKAST_RATE_SIGN_IN_PER_ADDRESS,
      signInPerIp: e.INKAST_RATE_SIGN_IN_PER_IP,
    },
    oidc:
      e.OIDC_ISSUER && e.OIDC_CLIENT_ID
        ? {
            issuer: e.OIDC_ISSUER,
            clientId: e.OIDC_CLIENT_ID,
            clientSecret: e.OIDC_CLIENT_SECRET,
            userClaim: e.OIDC_USER_CLAIM,
            scopes: e.OIDC_SCOPES.trim().split(/\s+/).join(' '),
          }
        : undefined,
  };
}

const g = globalThis as typeof globalThis & { __inkastConfig?: Config };

/** The process's configuration, read from process.env once. */
export function config(): Config {
  g.__inkastConfig ??= parseConfig(process.env);
  return g.__inkastConfig;
}
