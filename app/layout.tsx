import type { Metadata, Viewport } from 'next';
import type { ReactNode } from 'react';
import { t } from '@/lib/i18n';
import { LanguageSwitch } from '@/lib/i18n/language-switch';
import { requestLocale } from '@/lib/i18n/server';
import './globals.css';

export async function generateMetadata(): Promise<Metadata> {
  const locale = await requestLocale();
  return {
    title: { default: t(locale, 'site.name'), template: `%s – ${t(locale, 'site.name')}` },
    description: t(locale, 'site.tagline'),
    // Filedrop links are capabilities: keep them out of Referer headers and search engines.
    referrer: 'no-referrer',
    robots: { index: false, follow: false },
  };
}

export const viewport: Viewport = { width: 'device-width', initialScale: 1, colorScheme: 'light' };

export default async function RootLayout({ children }: { children: ReactNode }) {
  const locale = await requestLocale();
  return (
    <html lang={locale}>
      <body>
        <a className="skip-link" href="#main">
          {t(locale, 'site.skipLink')}
        </a>
        <header className="site-header">
          <div className="wrap site-header-inner">
            <a className="brand" href="/">
              <svg className="brand-mark" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
                <rect x="2.5" y="5" width="19" height="15" rx="2.5" fill="none" stroke="currentColor" strokeWidth="2" />
                <path d="M7 10h10" stroke="currentColor" strokeWidth="2.4" strokeLinecap="round" />
              </svg>
              <span>{t(locale, 'site.name')}</span>
              <span className="brand-tagline">{t(locale, 'site.tagline')}</span>
            </a>
            <LanguageSwitch locale={locale} />
          </div>
        </header>
        <main id="main" tabIndex={-1}>
          <div className="wrap">{children}</div>
        </main>
        <footer className="site-footer">
          <div className="wrap">{t(locale, 'site.footer')}</div>
        </footer>
      </body>
    </html>
  );
}
