/**
 * The append-only, hash-chained audit log (table `audit_log`). Each entry's hash covers the
 * previous entry's hash and every field of its own, so an edited, inserted or deleted row breaks
 * the chain from that row on. What it cannot show on its own: the newest entries cut off, or the
 * whole chain recomputed by someone with write access; anchor the head hash elsewhere for that.
 *
 * HEALTH DATA RULE: entries name who did what to which id; never a subject, message, file name or
 * token. `NoContent` keeps the obvious names out of `detail` at compile time and at run time.
 */
import crypto from 'node:crypto';
import type { Queryable } from '@/lib/db';

/** Any constant works, as long as every instance uses it: it serialises writers across processes. */
const AUDIT_LOCK = 7_411_003;
/** Bumped if the canonical encoding ever changes, so old and new entries stay verifiable. */
const ENCODING = 'inkast-audit-v1';
const PAGE = 1000;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Names that would carry health data or secrets: no detail may have them. */
const CONTENT_KEYS = ['subject', 'message', 'messageText', 'text', 'body', 'name', 'fileName', 'fileNames', 'filename', 'files', 'manifest', 'token', 'link'] as const;
type NoContent = { [K in (typeof CONTENT_KEYS)[number]]?: never };

export interface AuditEvent {
  /** `user:<id>`, `sender:<email>` or `system`. */
  actor: string;
  /** Dotted, past tense: `file.downloaded`, `delivery.viewed`, `user.created` … */
  action: string;
  /** What it happened to, as `<kind>:<id>` (e.g. `file:<uuid>`). */
  target?: string | null;
  detail?: NoContent & { [key: string]: JsonValue | undefined };
}

export interface AuditEntry {
  id: number;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  detail: { [key: string]: JsonValue };
  prevHash: Buffer | null;
  hash: Buffer;
}

/** An audit_log row as the database returns it. */
export interface AuditRow extends Omit<AuditEntry, 'prevHash' | 'hash'> {
  prev_hash: Uint8Array | null;
  hash: Uint8Array;
}

export type AuditVerification =
  | { ok: true; entries: number }
  /** `problem` for a translated message (the admin page); `reason` says the same in English. */
  | { ok: false; entryId: number; problem: 'missing' | 'unlinked' | 'changed'; reason: string };

/** JSON with object keys sorted at every level: the same value always encodes the same way. */
function canonicalJson(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A JSON array of strings is an unambiguous encoding: no field can spill into the next. */
function entryHash(e: Omit<AuditEntry, 'hash'>): Buffer {
  const fields = [
    ENCODING,
    e.prevHash ? e.prevHash.toString('hex') : null,
    String(e.id),
    e.at.toISOString(),
    e.actor,
    e.action,
    e.target,
    canonicalJson(e.detail),
  ];
  return crypto.createHash('sha256').update(JSON.stringify(fields), 'utf8').digest();
}

function assertNoContent(value: JsonValue, path: string): void {
  if (Array.isArray(value)) return value.forEach((v, i) => assertNoContent(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return;
  for (const [k, v] of Object.entries(value)) {
    if ((CONTENT_KEYS as readonly string[]).includes(k)) throw new TypeError(`audit: detail may not carry "${path}.${k}"`);
    assertNoContent(v, `${path}.${k}`);
  }
}

/**
 * Appends an entry on `q`, which must be the caller's open transaction: the entry commits or
 * rolls back with the event it records. Takes a transaction-scoped advisory lock, held until that
 * transaction ends, so call it last in the transaction. Ids are assigned under the lock without a
 * sequence, so a rolled-back writer leaves no gap and a gap always means a deleted row.
 */
export async function audit(q: Queryable, event: AuditEvent): Promise<AuditEntry> {
  if (!event.actor || !event.action) throw new TypeError('audit: actor and action are required');
  // Through JSON once, so what is hashed is exactly what jsonb gives back (no undefined, Dates as strings).
  const detail = JSON.parse(JSON.stringify(event.detail ?? {})) as { [key: string]: JsonValue };
  if (detail === null || typeof detail !== 'object' || Array.isArray(detail)) throw new TypeError('audit: detail must be an object');
  assertNoContent(detail, 'detail');

  await q.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
  const head = (
    await q.query<{ id: number; hash: Uint8Array; now: Date }>(
      // Milliseconds: what a JS Date holds, so the time hashed is the time read back.
      `SELECT l.id, l.hash, date_trunc('milliseconds', clock_timestamp()) AS now
         FROM (SELECT 1) one LEFT JOIN LATERAL (SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1) l ON true`,
    )
  ).rows[0];
  const entry: Omit<AuditEntry, 'hash'> = {
    id: head.id == null ? 1 : Number(head.id) + 1,
    at: head.now,
    actor: event.actor,
    action: event.action,
    target: event.target ?? null,
    detail,
    prevHash: head.hash ? Buffer.from(head.hash) : null,
  };
  const hash = entryHash(entry);
  await q.query(
    `INSERT INTO audit_log (id, at, actor, action, target, detail, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)`,
    [entry.id, entry.at, entry.actor, entry.action, entry.target, JSON.stringify(detail), entry.prevHash, hash],
  );
  return { ...entry, hash };
}

/**
 * Walks the whole chain in id order, a page at a time (memory stays flat), and names the first
 * entry that was changed, or the first id that is missing.
 */
export async function verifyAuditLog(q: Queryable): Promise<AuditVerification> {
  let expectedId = 1;
  let prevHash: Buffer | null = null;
  for (;;) {
    const rows = (
      await q.query<AuditRow>(`SELECT * FROM audit_log WHERE id >= $1 ORDER BY id LIMIT ${PAGE}`, [expectedId])
    ).rows;
    if (rows.length === 0) return { ok: true, entries: expectedId - 1 };
    for (const r of rows) {
      const id = Number(r.id);
      if (id !== expectedId) return { ok: false, entryId: expectedId, problem: 'missing', reason: `entry ${expectedId} is missing (the next is ${id})` };
      const stored = r.prev_hash ? Buffer.from(r.prev_hash) : null;
      const linked = stored === null ? prevHash === null : prevHash !== null && stored.equals(prevHash);
      if (!linked) return { ok: false, entryId: id, problem: 'unlinked', reason: `entry ${id} does not follow the entry before it (prev_hash differs)` };
      const hash = Buffer.from(r.hash);
      const computed = entryHash({ id, at: r.at, actor: r.actor, action: r.action, target: r.target, detail: r.detail, prevHash: stored });
      if (!computed.equals(hash)) return { ok: false, entryId: id, problem: 'changed', reason: `entry ${id} was changed after it was written (hash differs)` };
      prevHash = hash;
      expectedId++;
    }
  }
}
