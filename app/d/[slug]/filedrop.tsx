'use client';
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { t, type Locale } from '@/lib/i18n';
import { DeliveryUpload, problemOf, type Problem } from './delivery-upload';
import { DeliveryProgress } from './delivery-progress';
import { DeliveryResult } from './delivery-result';
import { problemMessage } from './messages';
import { ResumeStore } from './resume-store';
import { SenderForm, type SenderInput } from './sender-form';
import { EncryptWorker } from './worker-client';

export interface FiledropProps {
  slug: string;
  locale: Locale;
  mailboxName: string;
  maxFiles: number;
  maxBytes: number;
  limits: { files: string; size: string };
}

/** What the page needs from the browser; created once, on first use. */
interface Browser {
  worker: EncryptWorker;
  /** null when IndexedDB is unavailable (some private modes): sending works, resuming does not. */
  store: ResumeStore | null;
}

function supported(): boolean {
  return typeof Worker === 'function' && Boolean(globalThis.crypto?.subtle) && typeof Blob === 'function';
}

/** A polite live region the page speaks through; the same words twice are still read twice. */
function useAnnouncer(): [string, (message: string) => void] {
  const [message, setMessage] = useState('');
  const announce = useCallback((next: string) => {
    if (next) setMessage((prev) => (prev === next ? `${next}\u00a0` : next));
  }, []);
  return [message, announce];
}

export function Filedrop({ slug, locale, mailboxName, maxFiles, maxBytes, limits }: FiledropProps) {
  const [delivery, setDelivery] = useState<DeliveryUpload | null>(null);
  const [startProblem, setStartProblem] = useState<Problem | null>(null);
  const [unsupported, setUnsupported] = useState(false);
  const [message, announce] = useAnnouncer();
  const browser = useRef<Promise<Browser> | null>(null);

  const getBrowser = useCallback((): Promise<Browser> => {
    browser.current ??= ResumeStore.open()
      .catch(() => null)
      .then((store) => ({ worker: new EncryptWorker(), store }));
    return browser.current;
  }, []);

  // An unfinished delivery from an earlier visit is offered before a new one.
  useEffect(() => {
    if (!supported()) {
      setUnsupported(true);
      return;
    }
    let cancelled = false;
    void getBrowser().then(async ({ worker, store }) => {
      if (!store) return;
      const restored = await DeliveryUpload.restore(slug, store, worker).catch(() => null);
      if (cancelled) restored?.dispose();
      else if (restored) setDelivery((current) => current ?? restored);
    });
    return () => {
      cancelled = true;
    };
  }, [slug, getBrowser]);

  useEffect(() => () => delivery?.dispose(), [delivery]);

  useEffect(
    () => () => {
      void browser.current?.then(({ worker }) => worker.terminate());
    },
    [],
  );

  // Closing the tab mid-upload costs the sender time (resume needs the files picked again): ask.
  useEffect(() => {
    const warn = (event: BeforeUnloadEvent) => {
      if (delivery?.busy) event.preventDefault();
    };
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [delivery]);

  const send = async (input: SenderInput) => {
    setStartProblem(null);
    try {
      const { worker, store } = await getBrowser();
      setDelivery(await DeliveryUpload.start({ slug, locale, ...input }, store, worker));
    } catch (err) {
      setStartProblem(problemOf(err));
    }
  };

  return (
    <>
      <div className="visually-hidden" role="status" aria-live="polite" data-testid="announcer">
        {message}
      </div>
      {delivery ? (
        <ActiveDelivery locale={locale} delivery={delivery} announce={announce} onClose={() => setDelivery(null)} />
      ) : (
        <>
          <h1>{t(locale, 'filedrop.title', { mailbox: mailboxName })}</h1>
          <p className="lead">{t(locale, 'filedrop.lead')}</p>
          {unsupported && (
            <p className="notice notice-error" role="alert">
              {t(locale, 'error.unsupported')}
            </p>
          )}
          {startProblem && (
            <p className="notice notice-error" role="alert">
              {problemMessage(locale, startProblem)}
            </p>
          )}
          <SenderForm
            locale={locale}
            maxFiles={maxFiles}
            maxBytes={maxBytes}
            limits={limits}
            onSend={send}
            announce={announce}
          />
        </>
      )}
    </>
  );
}

function ActiveDelivery({
  locale,
  delivery,
  announce,
  onClose,
}: {
  locale: Locale;
  delivery: DeliveryUpload;
  announce: (message: string) => void;
  /** Back to an empty form: after a cancel, or to send more. */
  onClose: () => void;
}) {
  const view = useSyncExternalStore(delivery.subscribe, delivery.snapshot, delivery.snapshot);
  useEffect(() => {
    if (view.phase === 'cancelled') onClose();
  }, [view.phase, onClose]);
  if (view.phase === 'cancelled') return null;
  if (view.phase === 'submitted') return <DeliveryResult locale={locale} view={view} onSendMore={onClose} />;
  return <DeliveryProgress locale={locale} delivery={delivery} view={view} announce={announce} />;
}
