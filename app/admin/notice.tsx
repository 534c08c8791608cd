import { isPlainMessageKey, t, type Locale } from '@/lib/i18n';

type SearchParams = Record<string, string | string[] | undefined>;

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/**
 * The outcome of the admin action that sent the browser back here (lib/admin/http: `?done=` or
 * `?error=` carry a code; its text is `admin.done.<code>` / `admin.error.<code>` in the catalogue).
 */
export function AdminNotice({ locale, params }: { locale: Locale; params: SearchParams }) {
  const error = first(params.error);
  const done = first(params.done);
  if (error) {
    const key = `admin.error.${error}`;
    return (
      <p className="notice notice-error" role="alert" data-testid="admin-notice">
        {t(locale, isPlainMessageKey(key) ? key : 'admin.error.generic')}
      </p>
    );
  }
  if (done) {
    const key = `admin.done.${done}`;
    return (
      <p className="notice notice-success" role="status" data-testid="admin-notice">
        {t(locale, isPlainMessageKey(key) ? key : 'admin.notice.done')}
      </p>
    );
  }
  return null;
}
