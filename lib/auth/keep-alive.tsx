'use client';
import { usePathname } from 'next/navigation';
import { useEffect, useRef } from 'react';

const PING_EVERY_MS = 60_000;

/**
 * Pages cannot write cookies, so a handler reading page after page would idle out after an hour.
 * Rendered once in the signed-in layout, this asks /api/auth/session to refresh the session on
 * navigation and on input, at most once a minute. A tab left alone still idles out.
 */
export function KeepSessionAlive() {
  const pathname = usePathname();
  const last = useRef(0);
  useEffect(() => {
    const ping = () => {
      if (Date.now() - last.current < PING_EVERY_MS) return;
      last.current = Date.now();
      fetch('/api/auth/session', { method: 'POST', credentials: 'same-origin' }).catch(() => {});
    };
    ping();
    window.addEventListener('pointerdown', ping, { passive: true });
    window.addEventListener('keydown', ping, { passive: true });
    return () => {
      window.removeEventListener('pointerdown', ping);
      window.removeEventListener('keydown', ping);
    };
  }, [pathname]);
  return null;
}
