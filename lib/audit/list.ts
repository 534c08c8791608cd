/**
 * Reading the audit log for administrators: a filtered, paginated list (newest first) and an
 * export that streams the filtered entries a page at a time (memory stays flat however long the
 * log is) as CSV or as one JSON array.
 *
 * Kept apart from ./index (which lib/mailboxes' neighbours import to write entries) because it
 * needs MailboxError from lib/mailboxes: importing that from ./index would be an import cycle.
 */
import { z } from 'zod';
import type { Queryable } from '@/lib/db';
import { emailSchema, MailboxError } from '@/lib/mailboxes';
import type { AuditEntry, AuditRow } from './index';

/** Days are Swedish calendar days: the ones the admin pages show times in. */
const ZONE = 'Europe/Stockholm';
const EXPORT_PAGE = 1000;
export const MAX_LIST_LIMIT = 500;

/** Every action the code writes today, for the filter's suggestions; the log may hold others. */
export const KNOWN_AUDIT_ACTIONS = [
  'auth.sign-in-link-sent',
  'auth.signed-in',
  'auth.signed-out',
  'auth.sign-in-refused',
  'sender.code-sent',
  'sender.verified',
  'user.created',
  'user.invited',
  'user.role-changed',
  'user.disabled',
  'user.enabled',
  'mailbox.created',
  'mailbox.member-added',
  'mailbox.member-removed',
  'mailbox.link-rotated',
  'mailbox.link-enabled',
  'mailbox.link-disabled',
  'mailbox.policy-changed',
  'mailbox.key-rotated',
  'mailbox.key-exported',
  'master-key.rotated',
  'delivery.created',
  'delivery.submitted',
  'delivery.delivered',
  'delivery.rejected',
  'delivery.viewed',
  'delivery.quarantined',
  'delivery.abandoned',
  'delivery.deleted',
  'file.downloaded',
  'audit.exported',
] as const;

export interface AuditFilter {
  /** `system`, a raw actor (`user:<id>`, `sender:<email>`), or an email: that user or that sender. */
  actor?: string;
  /** Exact (`auth.signed-in`) or, ending in a dot, a prefix (`mailbox.`). */
  action?: string;
  /** Exact, as `<kind>:<id>`. */
  target?: string;
  /** First and last day, inclusive, as YYYY-MM-DD. */
  from?: string;
  to?: string;
}

export interface ListedAuditEntry extends AuditEntry {
  /** The email of the user the actor / target names, when it names one that exists. */
  actorEmail: string | null;
  targetEmail: string | null;
}

/** The filter was refused; `fields` names the fields at fault, for a form to point at. */
export class AuditFilterError extends MailboxError {
  constructor(
    message: string,
    readonly fields: (keyof AuditFilter)[],
  ) {
    super(400, 'invalid-filter', message);
  }
}

const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'a date as YYYY-MM-DD')
  .refine((s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)) && new Date(`${s}T00:00:00Z`).toISOString().startsWith(s), 'no such date');

const filterSchema = z
  .object({
    actor: z.union([
      z.literal('system'),
      z.string().regex(/^user:[0-9a-f-]{36}$/, 'user:<id>'),
      z.string().regex(/^sender:\S+@\S+$/, 'sender:<email>'),
      emailSchema,
    ]),
    action: z.string().max(100).regex(/^[a-z0-9-]+(\.[a-z0-9-]+)*\.?$/, 'an action such as auth.signed-in, or a prefix such as mailbox.'),
    target: z.string().max(300).regex(/^[a-z][a-z0-9-]*:\S+$/, 'a target as <kind>:<id>, such as mailbox:<id>'),
    from: day,
    to: day,
  })
  .partial()
  .refine((f) => !f.from || !f.to || f.from <= f.to, { message: 'from must not be after to', path: ['to'] });

const first = (v: unknown) => (Array.isArray(v) ? v[0] : v);

/**
 * The filter from a query string or form: empty fields (an untouched form input) are absent and
 * other keys (page, format, lang …) are ignored. Throws AuditFilterError (400 `invalid-filter`).
 */
export function parseAuditFilter(input: URLSearchParams | Record<string, unknown>): AuditFilter {
  const get = (k: string) => (input instanceof URLSearchParams ? input.get(k) : first(input[k]));
  const raw: Record<string, unknown> = {};
  for (const k of ['actor', 'action', 'target', 'from', 'to'] as const) {
    const v = get(k);
    if (v === undefined || v === null) continue;
    const s = typeof v === 'string' ? v.trim() : v;
    if (s !== '') raw[k] = s;
  }
  const parsed = filterSchema.safeParse(raw);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => String(i.path[0])))] as (keyof AuditFilter)[];
    throw new AuditFilterError(z.prettifyError(parsed.error), fields);
  }
  return parsed.data;
}

/** The filter as query parameters, for links that keep it (pagination, export). */
export function auditFilterQuery(filter: AuditFilter): URLSearchParams {
  const p = new URLSearchParams();
  for (const k of ['actor', 'action', 'target', 'from', 'to'] as const) if (filter[k]) p.set(k, filter[k]);
  return p;
}

/** SQL conditions on `a` (audit_log) for the filter; its values are appended to `params`. */
function conditions(filter: AuditFilter, params: unknown[]): string[] {
  const add = (v: unknown) => `$${params.push(v)}`;
  const where: string[] = [];
  const { actor, action, target, from, to } = filter;
  if (actor) {
    if (actor === 'system' || actor.includes(':')) where.push(`a.actor = ${add(actor)}`);
    else {
      // An address is a user (by id in the log) and may also have sent files (`sender:<email>`).
      const email = add(actor);
      where.push(`a.actor IN ('sender:' || ${email}, (SELECT 'user:' || u.id FROM users u WHERE u.email = ${email}))`);
    }
  }
  if (action?.endsWith('.')) where.push(`starts_with(a.action, ${add(action)})`);
  else if (action) where.push(`a.action = ${add(action)}`);
  if (target) where.push(`a.target = ${add(target)}`);
  if (from) where.push(`a.at >= (${add(from)}::date::timestamp AT TIME ZONE '${ZONE}')`);
  if (to) where.push(`a.at < ((${add(to)}::date + 1)::timestamp AT TIME ZONE '${ZONE}')`);
  return where;
}

interface Row extends AuditRow {
  actor_email: string | null;
  target_email: string | null;
}

const SELECT = `SELECT a.*, ua.email AS actor_email, ut.email AS target_email
  FROM audit_log a
  LEFT JOIN users ua ON a.actor = 'user:' || ua.id
  LEFT JOIN users ut ON a.target = 'user:' || ut.id`;

function entryFrom(r: Row): ListedAuditEntry {
  return {
    id: Number(r.id),
    at: r.at,
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: r.detail,
    prevHash: r.prev_hash ? Buffer.from(r.prev_hash) : null,
    hash: Buffer.from(r.hash),
    actorEmail: r.actor_email,
    targetEmail: r.target_email,
  };
}

/** The filtered entries, newest first, and how many match in all. */
export async function listAuditEntries(
  q: Queryable,
  filter: AuditFilter,
  { limit, offset }: { limit: number; offset: number },
): Promise<{ entries: ListedAuditEntry[]; total: number }> {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT || !Number.isInteger(offset) || offset < 0) {
    throw new RangeError(`listAuditEntries: limit 1–${MAX_LIST_LIMIT} and a non-negative offset`);
  }
  const params: unknown[] = [];
  const where = conditions(filter, params);
  const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
  const total = Number((await q.query<{ n: number }>(`SELECT count(*) AS n FROM audit_log a ${clause}`, params)).rows[0].n);
  const rows = (
    await q.query<Row>(`${SELECT} ${clause} ORDER BY a.id DESC LIMIT ${limit} OFFSET ${offset}`, params)
  ).rows;
  return { entries: rows.map(entryFrom), total };
}

/**
 * The filtered entries in chain order (oldest first, so an export can be checked link by link),
 * a page at a time by id: no offset to rescan and no cursor holding a connection between pages.
 * Stops at the newest entry there was when it started, so entries written meanwhile (the
 * export's own audit entry among them) do not make it run on.
 */
export async function* exportAuditEntries(
  q: Queryable,
  filter: AuditFilter,
  { pageSize = EXPORT_PAGE }: { pageSize?: number } = {},
): AsyncGenerator<ListedAuditEntry[]> {
  const head = Number((await q.query<{ id: number | null }>('SELECT max(id) AS id FROM audit_log')).rows[0].id ?? 0);
  let after = 0;
  for (;;) {
    const params: unknown[] = [];
    const where = conditions(filter, params);
    where.push(`a.id > $${params.push(after)}`, `a.id <= $${params.push(head)}`);
    const rows = (await q.query<Row>(`${SELECT} WHERE ${where.join(' AND ')} ORDER BY a.id LIMIT ${pageSize}`, params)).rows;
    if (rows.length === 0) return;
    yield rows.map(entryFrom);
    if (rows.length < pageSize) return;
    after = Number(rows[rows.length - 1].id);
  }
}

export const AUDIT_CSV_COLUMNS = ['id', 'at', 'actor', 'actor_email', 'action', 'target', 'target_email', 'detail', 'hash', 'prev_hash'] as const;

/**
 * One CSV field (RFC 4180). A field a spreadsheet would run as a formula (leading = + - @, or a
 * tab or carriage return that some strip before looking) gets a leading apostrophe: the log
 * holds text others typed (addresses, OIDC claims), and the export is opened in Excel.
 */
export function csvField(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

function exportRecord(e: ListedAuditEntry) {
  return {
    id: e.id,
    at: e.at.toISOString(),
    actor: e.actor,
    actor_email: e.actorEmail,
    action: e.action,
    target: e.target,
    target_email: e.targetEmail,
    detail: e.detail,
    hash: e.hash.toString('hex'),
    prev_hash: e.prevHash?.toString('hex') ?? null,
  };
}

/** CSV with a header row, CRLF line ends (RFC 4180); one string per page of entries. */
export async function* auditCsv(pages: AsyncIterable<ListedAuditEntry[]>): AsyncGenerator<string> {
  yield `${AUDIT_CSV_COLUMNS.join(',')}\r\n`;
  for await (const page of pages) {
    let out = '';
    for (const e of page) {
      const r = exportRecord(e);
      const cells = AUDIT_CSV_COLUMNS.map((c) => {
        const v = r[c];
        return v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
      });
      out += `${cells.map(csvField).join(',')}\r\n`;
    }
    yield out;
  }
}

/** One JSON array, written as it goes: `JSON.parse` reads the whole download. */
export async function* auditJson(pages: AsyncIterable<ListedAuditEntry[]>): AsyncGenerator<string> {
  yield '[';
  let separator = '\n';
  for await (const page of pages) {
    let out = '';
    for (const e of page) {
      out += separator + JSON.stringify(exportRecord(e));
      separator = ',\n';
    }
    yield out;
  }
  yield '\n]\n';
}
