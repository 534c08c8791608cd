import { t, type Locale } from '@/lib/i18n';

/** First, last, and the current page with its neighbours; null marks a gap. */
function pagesShown(page: number, pageCount: number): (number | null)[] {
  const shown = [...new Set([1, page - 1, page, page + 1, pageCount])].filter((p) => p >= 1 && p <= pageCount).sort((a, b) => a - b);
  const out: (number | null)[] = [];
  for (const p of shown) {
    const last = out.at(-1);
    if (typeof last === 'number' && p - last > 1) out.push(null);
    out.push(p);
  }
  return out;
}

/** Page links as a labelled list; the current page is marked for assistive technology too. */
export function Pagination({
  locale,
  page,
  pageCount,
  href,
}: {
  locale: Locale;
  page: number;
  pageCount: number;
  href: (page: number) => string;
}) {
  if (pageCount <= 1) return null;
  return (
    <nav className="pagination" aria-label={t(locale, 'inbox.pagination.label')}>
      <ul>
        {page > 1 && (
          <li>
            <a href={href(page - 1)} rel="prev">
              {t(locale, 'inbox.pagination.previous')}
            </a>
          </li>
        )}
        {pagesShown(page, pageCount).map((p, i) =>
          p === null ? (
            <li key={`gap-${i}`} className="pagination-gap" aria-hidden="true">
              …
            </li>
          ) : (
            <li key={p}>
              <a href={href(p)} aria-current={p === page ? 'page' : undefined} aria-label={t(locale, 'inbox.pagination.page', { page: p })}>
                {p}
              </a>
            </li>
          ),
        )}
        {page < pageCount && (
          <li>
            <a href={href(page + 1)} rel="next">
              {t(locale, 'inbox.pagination.next')}
            </a>
          </li>
        )}
      </ul>
    </nav>
  );
}
