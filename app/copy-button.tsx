'use client';
import { useEffect, useState } from 'react';

export interface CopyTexts {
  /** The button's visible text, e.g. "Copy". */
  label: string;
  /** Its accessible name, saying what it copies. */
  name: string;
  /** Announced once copied. */
  copied: string;
  /** Announced when the browser refused. */
  failed: string;
}

/**
 * Copies a text (a file's SHA-256, a filedrop link) and announces the outcome. Shown only where
 * the Clipboard API exists (scripts on, secure context); the text stays selectable regardless.
 */
export function CopyButton({ text, texts }: { text: string; texts: CopyTexts }) {
  const [supported, setSupported] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  useEffect(() => setSupported(typeof navigator.clipboard?.writeText === 'function'), []);
  if (!supported) return null;

  const copy = () =>
    navigator.clipboard.writeText(text).then(
      () => setAnnouncement(texts.copied),
      () => setAnnouncement(texts.failed),
    );
  return (
    <>
      <button type="button" className="button button-quiet button-small" aria-label={texts.name} onClick={copy}>
        {texts.label}
      </button>
      <span role="status" className="copy-status">
        {announcement}
      </span>
    </>
  );
}
