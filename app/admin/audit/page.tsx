import type { Metadata } from 'next';
import { notFound } from 'next/navigation';
import { AccountBar } from '@/app/inbox/account-bar';
import { Pagination } from '@/app/inbox/pagination';
import { Time } from '@/app/inbox/time';
import { verifyAuditLog, type JsonValue } from '@/lib/audit';
import {
  AuditFilterError,
  auditFilterQuery,
  KNOWN_AUDIT_ACTIONS,
  listAuditEntries,
  parseAuditFilter,
  type AuditFilter,
  type ListedAuditEntry,
} from '@/lib/audit/list';
import { requireAdmin } from '@/lib/auth';
import { db } from '@/lib/db';
import { isLocale, isPlainMessageKey, t, type Locale } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';

type SearchParams = Promise<Record<string, string | string[] | undefined>>;

const PAGE_SIZE = 50;
const FIELDS = ['actor', 'action', 'target', 'from', 'to'] as const;
/** The prefixes of the known actions, for the suggestions: `mailbox.` shows every mailbox action. */
const ACTION_PREFIXES = [...new Set(KNOWN_AUDIT_ACTIONS.map((a) => `${a.split('.')[0]}.`))];

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

export async function generateMetadata({ searchParams }: { searchParams: SearchParams }): Promise<Metadata> {
  return { title: t(await requestLocale(searchParams), 'admin.audit.title') };
}

function actionName(locale: Locale, action: string): string | null {
  const key = `admin.audit.action.${action}`;
  return isPlainMessageKey(key) ? t(locale, key) : null;
}

/** `key=value` pairs, strings bare and anything else as JSON: one line an admin can scan. */
function compactDetail(detail: { [key: string]: JsonValue }): string {
  return Object.entries(detail)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}

/** A user's email with the raw id beneath it, or the raw text when it names no user. */
function Party({ raw, email }: { raw: string; email: string | null }) {
  if (!email) return <code className="break-word">{raw}</code>;
  return (
    <>
      {email}
      <span className="subtle mono break-word">{raw}</span>
    </>
  );
}

function EntryRow({ locale, e }: { locale: Locale; e: ListedAuditEntry }) {
  const name = actionName(locale, e.action);
  return (
    <tr data-testid="audit-entry">
      <th scope="row" className="nowrap">
        <Time locale={locale} date={e.at} />
        <span className="subtle mono">#{e.id}</span>
      </th>
      <td>{e.actor === 'system' ? t(locale, 'admin.audit.system') : <Party raw={e.actor} email={e.actorEmail} />}</td>
      <td>
        {name}
        <span className={name ? 'subtle mono' : 'mono'} data-testid="audit-action">
          {e.action}
        </span>
      </td>
      <td>{e.target && <Party raw={e.target} email={e.targetEmail} />}</td>
      <td className="audit-detail mono break-word">{compactDetail(e.detail)}</td>
    </tr>
  );
}

/**
 * The audit log for administrators: filter, page through, export what the filter matches, and
 * check that the hash chain is unbroken.
 */
export default async function AuditPage({ searchParams }: { searchParams: SearchParams }) {
  const params = await searchParams;
  const user = await requireAdmin('/admin/audit');
  const locale = await requestLocale(searchParams);
  const lang = isLocale(params.lang) && <LocaleFromQuery locale={locale} />;

  let filter: AuditFilter = {};
  let invalid: readonly (keyof AuditFilter)[] = [];
  try {
    filter = parseAuditFilter(params);
  } catch (err) {
    if (!(err instanceof AuditFilterError)) throw err;
    invalid = err.fields;
  }
  const q = await db();
  const verification = first(params.verify) === '1' ? await verifyAuditLog(q) : null;
  const page = Math.max(1, Math.trunc(Number(first(params.page))) || 1);
  const { entries, total } = invalid.length
    ? { entries: [], total: 0 }
    : await listAuditEntries(q, filter, { limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
  const pageCount = Math.max(1, Math.ceil(total / PAGE_SIZE));
  if (page > pageCount) notFound();

  const query = auditFilterQuery(filter);
  const withQuery = (path: string, extra: Record<string, string> = {}) => {
    const p = new URLSearchParams(query);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p.size ? `${path}?${p}` : path;
  };
  // What was typed stays in the form, even when it was refused, so it can be corrected.
  const typed = (k: (typeof FIELDS)[number]) => first(params[k]) ?? '';
  const fieldProps = (k: (typeof FIELDS)[number]) => ({
    id: `audit-${k}`,
    name: k,
    className: 'input',
    defaultValue: typed(k),
    'aria-invalid': invalid.includes(k) ? true : undefined,
    'aria-describedby': invalid.includes(k) ? 'audit-filter-error' : undefined,
  });

  return (
    <>
      {lang}
      <AccountBar locale={locale} user={user} current="audit" />
      <h1>{t(locale, 'admin.audit.title')}</h1>
      <p className="lead">{t(locale, 'admin.audit.lead')}</p>

      {verification &&
        (verification.ok ? (
          <p className="notice notice-success" role="status" data-testid="audit-verification">
            {t(locale, 'admin.audit.verify.intact', { count: verification.entries })}
          </p>
        ) : (
          <p className="notice notice-error" role="alert" data-testid="audit-verification">
            {t(locale, `admin.audit.verify.${verification.problem}`, { id: verification.entryId })}
          </p>
        ))}

      {invalid.length > 0 && (
        <p className="notice notice-error" role="alert" id="audit-filter-error" data-testid="audit-filter-error">
          {t(locale, 'admin.audit.filter.invalid', { fields: invalid.map((f) => t(locale, `admin.audit.field.${f}`)).join(', ') })}
        </p>
      )}

      <form method="get" action="/admin/audit" className="audit-filter" role="search">
        <fieldset>
          <legend>{t(locale, 'admin.audit.filter.legend')}</legend>
          <div className="audit-filter-fields">
            <div className="field">
              <label className="label" htmlFor="audit-actor">
                {t(locale, 'admin.audit.filter.actor')}
              </label>
              <input {...fieldProps('actor')} type="text" autoComplete="off" spellCheck={false} />
            </div>
            <div className="field">
              <label className="label" htmlFor="audit-action">
                {t(locale, 'admin.audit.filter.action')}
              </label>
              <input {...fieldProps('action')} type="text" list="audit-actions" autoComplete="off" spellCheck={false} />
              <datalist id="audit-actions">
                {[...ACTION_PREFIXES, ...KNOWN_AUDIT_ACTIONS].map((a) => (
                  <option key={a} value={a}>
                    {actionName(locale, a) ?? a}
                  </option>
                ))}
              </datalist>
            </div>
            <div className="field">
              <label className="label" htmlFor="audit-target">
                {t(locale, 'admin.audit.filter.target')}
              </label>
              <input {...fieldProps('target')} type="text" autoComplete="off" spellCheck={false} />
            </div>
            <div className="field">
              <label className="label" htmlFor="audit-from">
                {t(locale, 'admin.audit.filter.from')}
              </label>
              <input {...fieldProps('from')} type="date" />
            </div>
            <div className="field">
              <label className="label" htmlFor="audit-to">
                {t(locale, 'admin.audit.filter.to')}
              </label>
              <input {...fieldProps('to')} type="date" />
            </div>
          </div>
          <div className="actions">
            <button type="submit" className="button button-primary">
              {t(locale, 'admin.audit.filter.submit')}
            </button>
            <a href="/admin/audit">{t(locale, 'admin.audit.filter.clear')}</a>
          </div>
        </fieldset>
      </form>

      <div className="actions audit-tools">
        {invalid.length === 0 && (
          <nav aria-label={t(locale, 'admin.audit.export.label')}>
            <ul className="plain-list audit-export">
              <li>
                <a href={withQuery('/api/admin/audit', { format: 'csv' })} download data-testid="audit-export-csv">
                  {t(locale, 'admin.audit.export.csv')}
                </a>
              </li>
              <li>
                <a href={withQuery('/api/admin/audit', { format: 'json' })} download data-testid="audit-export-json">
                  {t(locale, 'admin.audit.export.json')}
                </a>
              </li>
            </ul>
            <p className="hint">{t(locale, 'admin.audit.export.note')}</p>
          </nav>
        )}
        <form method="get" action="/admin/audit">
          {[...query].map(([k, v]) => (
            <input key={k} type="hidden" name={k} value={v} />
          ))}
          <button type="submit" name="verify" value="1" className="button button-quiet">
            {t(locale, 'admin.audit.verify.button')}
          </button>
        </form>
      </div>

      {invalid.length > 0 ? null : entries.length === 0 ? (
        <p>{t(locale, 'admin.audit.none')}</p>
      ) : (
        <div className="table-wrap">
          <table className="data-table audit-table">
            <caption>{t(locale, 'admin.audit.caption', { page, pages: pageCount, total })}</caption>
            <thead>
              <tr>
                <th scope="col">{t(locale, 'admin.audit.column.at')}</th>
                <th scope="col">{t(locale, 'admin.audit.column.actor')}</th>
                <th scope="col">{t(locale, 'admin.audit.column.action')}</th>
                <th scope="col">{t(locale, 'admin.audit.column.target')}</th>
                <th scope="col">{t(locale, 'admin.audit.column.detail')}</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <EntryRow key={e.id} locale={locale} e={e} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pagination locale={locale} page={page} pageCount={pageCount} href={(p) => withQuery('/admin/audit', p > 1 ? { page: String(p) } : {})} />
    </>
  );
}
