import type { Metadata } from 'next';
import { notFound } from 'next/navigation';
import { CopyButton } from '@/app/copy-button';
import { requireUser } from '@/lib/auth';
import type { RejectReason } from '@/lib/deliveries';
import { deliveryForUser, type DeliveryFile } from '@/lib/deliveries/inbox';
import { formatBytes, isLocale, t, type Locale, type PlainMessageKey } from '@/lib/i18n';
import { LocaleFromQuery } from '@/lib/i18n/locale-from-query';
import { requestLocale } from '@/lib/i18n/server';
import { AccountBar } from '../../account-bar';
import { SenderAddress } from '../../sender';
import { Time } from '../../time';

type Params = Promise<{ id: string }>;
type SearchParams = Promise<Record<string, string | string[] | undefined>>;

// The subject stays out of the title: titles end up in browser history and window lists.
export async function generateMetadata({ searchParams }: { searchParams: SearchParams }): Promise<Metadata> {
  return { title: t(await requestLocale(searchParams), 'delivery.title') };
}

const reasonKeys: Record<RejectReason, PlainMessageKey> = {
  'manifest-unreadable': 'delivery.reason.manifestUnreadable',
  'manifest-mismatch': 'delivery.reason.manifestMismatch',
  'file-corrupt': 'delivery.reason.fileCorrupt',
  'file-mismatch': 'delivery.reason.fileMismatch',
  'too-large': 'delivery.reason.tooLarge',
  infected: 'delivery.reason.infected',
};

/** One delivery as its handlers see it. Opening it is recorded (and audited) by deliveryForUser. */
export default async function DeliveryPage({ params, searchParams }: { params: Params; searchParams: SearchParams }) {
  const { id } = await params;
  const user = await requireUser(`/inbox/deliveries/${encodeURIComponent(id)}`);
  const locale = await requestLocale(searchParams);
  const delivery = await deliveryForUser(user.id, id);
  if (!delivery) notFound();

  const error = (await searchParams).error;
  const subject = delivery.subject === null ? t(locale, 'delivery.unreadable') : delivery.subject || t(locale, 'delivery.noSubject');
  return (
    <>
      {isLocale((await searchParams).lang) && <LocaleFromQuery locale={locale} />}
      <AccountBar locale={locale} user={user} />
      <p>
        <a href={`/inbox?mailbox=${encodeURIComponent(delivery.mailbox.id)}`}>
          <span aria-hidden="true">← </span>
          {t(locale, 'delivery.back', { mailbox: delivery.mailbox.name })}
        </a>
      </p>
      <h1 data-testid="delivery-subject">{subject}</h1>

      {delivery.state === 'rejected' && (
        <div className="notice notice-error">
          <p>
            {t(locale, 'delivery.rejected', {
              reason: t(locale, (delivery.rejectReason && reasonKeys[delivery.rejectReason]) || 'delivery.reason.unknown'),
            })}
          </p>
        </div>
      )}

      <section className="card" aria-label={t(locale, 'delivery.title')}>
        <dl className="facts">
          <dt>{t(locale, 'delivery.sender')}</dt>
          <dd>
            <SenderAddress locale={locale} email={delivery.senderEmail} verified={delivery.senderVerified} />
            <span className="subtle">
              {t(locale, delivery.senderVerified ? 'delivery.sender.verifiedHint' : 'delivery.sender.unverifiedHint')}
            </span>
          </dd>
          <dt>{t(locale, 'delivery.reference')}</dt>
          <dd className="mono">{delivery.reference}</dd>
          <dt>{t(locale, 'delivery.received')}</dt>
          <dd>
            <Time locale={locale} date={delivery.receivedAt} />
          </dd>
          <dt>{t(locale, 'delivery.mailbox')}</dt>
          <dd>{delivery.mailbox.name}</dd>
        </dl>
      </section>

      <section className="card" aria-labelledby="message-heading">
        <h2 id="message-heading">{t(locale, 'delivery.message')}</h2>
        {/* Plain text as the sender typed it: React escapes it, CSS keeps its line breaks, nothing becomes a link. */}
        {delivery.message ? (
          <p className="message-text" data-testid="delivery-message">
            {delivery.message}
          </p>
        ) : (
          <p className="subtle-inline">{t(locale, delivery.message === null ? 'delivery.unreadable' : 'delivery.message.none')}</p>
        )}
      </section>

      {delivery.files.length > 0 && (
        <section className="card" aria-labelledby="files-heading">
          <h2 id="files-heading">{t(locale, 'delivery.files')}</h2>
          <p className="subtle-inline">{t(locale, 'delivery.files.receiptHint')}</p>
          <ul className="file-cards">
            {delivery.files.map((f) => (
              <FileCard key={f.id} locale={locale} file={f} />
            ))}
          </ul>
        </section>
      )}

      <section className="card" aria-labelledby="delete-heading">
        <h2 id="delete-heading">{t(locale, 'delivery.delete.heading')}</h2>
        <p>{t(locale, 'delivery.delete.lead')}</p>
        {error && (
          <p className="notice notice-error" role="alert">
            {t(locale, 'delivery.delete.refused')}
          </p>
        )}
        <form method="post" action={`/api/inbox/deliveries/${encodeURIComponent(delivery.id)}/delete`}>
          <div className="field checkbox-field">
            <input type="checkbox" id="delete-confirm" name="confirm" required />
            <label htmlFor="delete-confirm">{t(locale, 'delivery.delete.confirm', { mailbox: delivery.mailbox.name })}</label>
          </div>
          <button type="submit" className="button button-danger">
            {t(locale, 'delivery.delete.submit')}
          </button>
        </form>
      </section>
    </>
  );
}

function FileCard({ locale, file: f }: { locale: Locale; file: DeliveryFile }) {
  return (
    <li className="file-card" data-testid="delivery-file">
      <h3 className="file-name">
        {f.name}
      </h3>
      <dl className="facts">
        <dt>{t(locale, 'delivery.file.size')}</dt>
        <dd>{formatBytes(locale, f.size)}</dd>
        {f.type && (
          <>
            <dt>{t(locale, 'delivery.file.type')}</dt>
            <dd>{f.type}</dd>
          </>
        )}
        <dt>{t(locale, 'delivery.file.sha256')}</dt>
        <dd className="sha256-row">
          <code className="sha256" data-testid="sha256">
            {f.sha256}
          </code>
          <CopyButton
            text={f.sha256}
            texts={{
              label: t(locale, 'delivery.file.copy'),
              name: t(locale, 'delivery.file.copyNamed', { name: f.name }),
              copied: t(locale, 'delivery.file.copied', { name: f.name }),
              failed: t(locale, 'delivery.file.copyFailed'),
            }}
          />
        </dd>
      </dl>
      <p>
        <a className="button button-primary" href={`/api/files/${f.id}`} download aria-label={t(locale, 'delivery.file.downloadNamed', { name: f.name })}>
          {t(locale, 'delivery.file.download')}
        </a>
      </p>
      {f.downloads.length === 0 ? (
        <p className="subtle-inline">{t(locale, 'delivery.file.notDownloaded')}</p>
      ) : (
        <table className="data-table">
          <caption>{t(locale, 'delivery.file.downloads', { name: f.name })}</caption>
          <thead>
            <tr>
              <th scope="col">{t(locale, 'delivery.file.downloadedBy')}</th>
              <th scope="col">{t(locale, 'delivery.file.downloadedAt')}</th>
            </tr>
          </thead>
          <tbody>
            {f.downloads.map((dl, i) => (
              <tr key={i}>
                <td>
                  {dl.by.name} <span className="subtle-inline">{dl.by.email}</span>
                </td>
                <td className="nowrap">
                  <Time locale={locale} date={dl.at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </li>
  );
}
