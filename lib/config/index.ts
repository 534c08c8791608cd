import path from 'node:path';
import { z } from 'zod';

/** Thrown when the environment holds a value Inkast cannot run with; names the variable. */
export class ConfigError extends Error {}

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

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
  INKAST_UPLOAD_TOKEN_TTL_HOURS: z.coerce.number().positive().default(48),
  INKAST_ABANDONED_UPLOAD_HOURS: z.coerce.number().positive().default(72),
  INKAST_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Env = z.infer<typeof schema>;

export interface Config {
  dataDir: string;
  publicUrl: string;
  port: number;
  databaseUrl: string | undefined;
  masterKey: Buffer | undefined;
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
  uploadTokenTtlMs: number;
  abandonedUploadMs: number;
  logLevel: Env['INKAST_LOG_LEVEL'];
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
  const accessKeyId = e.S3_ACCESS_KEY_ID ?? cleaned.AWS_ACCESS_KEY_ID;
  const secretAccessKey = e.S3_SECRET_ACCESS_KEY ?? cleaned.AWS_SECRET_ACCESS_KEY;
  return {
    dataDir: path.resolve(e.INKAST_DATA_DIR),
    publicUrl: (e.INKAST_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    masterKey: e.INKAST_MASTER_KEY ? Buffer.from(e.INKAST_MASTER_KEY, 'base64') : undefined,
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
    uploadTokenTtlMs: e.INKAST_UPLOAD_TOKEN_TTL_HOURS * 3600_000,
    abandonedUploadMs: e.INKAST_ABANDONED_UPLOAD_HOURS * 3600_000,
    logLevel: e.INKAST_LOG_LEVEL,
  };
}

const g = globalThis as typeof globalThis & { __inkastConfig?: Config };

/** The process's configuration, read from process.env once. */
export function config(): Config {
  g.__inkastConfig ??= parseConfig(process.env);
  return g.__inkastConfig;
}
