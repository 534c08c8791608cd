'use client';
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';
import { t, type Locale, type PlainMessageKey } from '@/lib/i18n';
import { ApiError, requestSenderCode } from './api';
import { DeliveryUpload, problemOf, type Problem } from './delivery-upload';
import { DeliveryProgress } from './delivery-progress';
import { DeliveryResult } from './delivery-result';
import { problemMessage } from './messages';
import { ResumeStore } from './resume-store';
import { SenderCode } from './sender-code';
import { SenderForm, type SenderInput } from './sender-form';
import { EncryptWorker } from './worker-client';

export interface FiledropProps {
  slug: string;
  locale: Locale;
  mailboxName: string;
  maxFiles: number;
  maxBytes: number;
  limits: { files: string; size: string; kept: string };
  /** The mailbox accepts only senders who confirm their address with a mailed code. */
  requireVerifiedSender?: boolean;
  /** The address this browser confirmed for the mailbox within the last hour (the sender cookie). */
  verifiedEmail?: string | null;
}

/** The code step in progress: the form's input waits behind it; `round` remounts it for a fresh try. */
interface CodeStepState {
  input: SenderInput;
  reason?: PlainMessageKey;
  round: number;
}

const normaliseEmail = (email: string) => email.trim().toLowerCase();

/** The server wants a (new) code before it opens the delivery. */
function codeReason(err: unknown): PlainMessageKey | undefined {
  if (!(err instanceof ApiError)) return undefined;
  if (err.code === 'sender-verification-required') return 'verify.error.sessionExpired';
  if (err.code === 'sender-email-mismatch') return 'verify.error.mismatch';
  return undefined;
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

export function Filedrop({
  slug,
  locale,
  mailboxName,
  maxFiles,
  maxBytes,
  limits,
  requireVerifiedSender = false,
  verifiedEmail: initiallyVerified = null,
}: FiledropProps) {
  const [delivery, setDelivery] = useState<DeliveryUpload | null>(null);
  const [startProblem, setStartProblem] = useState<{ problem: Problem; context?: PlainMessageKey } | null>(null);
  const [verifiedEmail, setVerifiedEmail] = useState<string | null>(initiallyVerified);
  const [codeStep, setCodeStep] = useState<CodeStepState | null>(null);
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

  /** Mails a code and shows the code step; the form's input waits. */
  const askCode = async (input: SenderInput, reason?: PlainMessageKey) => {
    try {
      await requestSenderCode({ slug, email: input.senderEmail, locale });
      setCodeStep((prev) => ({ input, reason, round: (prev?.round ?? 0) + 1 }));
    } catch (err) {
      setCodeStep(null);
      setStartProblem({ problem: problemOf(err), context: 'ratelimit.codes' });
    }
  };

  const start = async (input: SenderInput) => {
    try {
      const { worker, store } = await getBrowser();
      const started = await DeliveryUpload.start({ slug, locale, ...input }, store, worker);
      setCodeStep(null);
      setDelivery(started);
    } catch (err) {
      const reason = requireVerifiedSender ? codeReason(err) : undefined;
      if (reason) {
        setVerifiedEmail(null);
        await askCode(input, reason);
        return;
      }
      setCodeStep(null);
      setStartProblem({ problem: problemOf(err) });
    }
  };

  const send = async (input: SenderInput) => {
    setStartProblem(null);
    if (requireVerifiedSender && verifiedEmail !== normaliseEmail(input.senderEmail)) {
      await askCode(input);
      return;
    }
    await start(input);
  };

  const backToForm = () => {
    setCodeStep(null);
    requestAnimationFrame(() => document.getElementById('sender-email')?.focus());
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
          {startProblem && !codeStep && (
            <p className="notice notice-error" role="alert">
              {problemMessage(locale, startProblem.problem, startProblem.context)}
            </p>
          )}
          {codeStep && (
            <SenderCode
              key={codeStep.round}
              locale={locale}
              slug={slug}
              email={codeStep.input.senderEmail}
              reason={codeStep.reason}
              announce={announce}
              onBack={backToForm}
              onVerified={async () => {
                setVerifiedEmail(normaliseEmail(codeStep.input.senderEmail));
                await start(codeStep.input);
              }}
            />
          )}
          {/* Hidden, not unmounted, during the code step: going back keeps everything typed and chosen. */}
          <div hidden={codeStep !== null}>
            <SenderForm
              locale={locale}
              maxFiles={maxFiles}
              maxBytes={maxBytes}
              limits={limits}
              verificationRequired={requireVerifiedSender}
              onSend={send}
              announce={announce}
            />
          </div>
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
