'use client';
import { useEffect, useState } from 'react';
import { t, type Locale } from '@/lib/i18n';

/**
 * Copies a file's SHA-256 so the handler can compare it with the sender's. Shown only where the
 * Clipboard API exists (scripts on, secure context); the digest stays selectable text regardless.
 */
export function CopyButton({ locale, text, name }: { locale: Locale; text: string; name: string }) {
  const [supported, setSupported] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  useEffect(() => setSupported(typeof navigator.clipboard?.writeText === 'function'), []);
  if (!supported) return null;

  const copy = () =>
    navigator.clipboard.writeText(text).then(
      () => setAnnouncement(t(locale, 'delivery.file.copied', { name })),
      () => setAnnouncement(t(locale, 'delivery.file.copyFailed')),
    );
  return (
    <>
      <button type="button" className="button button-quiet button-small" aria-label={t(locale, 'delivery.file.copyNamed', { name })} onClick={copy}>
        {t(locale, 'delivery.file.copy')}
      </button>
      <span role="status" className="copy-status">
        {announcement}
      </span>
    </>
  );
}
