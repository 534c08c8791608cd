/**
 * Every email Inkast sends, in Swedish and English, text and HTML, from this one place.
 *
 * HEALTH DATA RULE: an email never contains a delivery's subject, message text or file names.
 * The parameter types below have no field that could carry them, and `NoContent` forbids the
 * obvious names outright, so passing one does not compile. Templates build plain strings; the
 * HTML is produced (and escaped) in one function at the end, never written by a template.
 */
import type { Locale } from '@/lib/i18n';

/** Why a delivery was rejected: the codes lib/deliveries stores in `deliveries.reject_reason`. */
export type DeliveryRejectReason = 'manifest-unreadable' | 'manifest-mismatch' | 'file-corrupt' | 'file-mismatch' | 'too-large' | 'infected';

/** Names that would carry health data: no template's params may have them. */
type NoContent = {
  subject?: never;
  message?: never;
  messageText?: never;
  text?: never;
  body?: never;
  name?: never;
  fileName?: never;
  fileNames?: never;
  filename?: never;
  files?: never;
  manifest?: never;
};

export interface MailTemplates {
  /**
   * To the sender: their delivery could not be accepted. With `quarantine`, to an administrator
   * instead: the malware scanner stopped the delivery (lib/scan).
   */
  'delivery-rejected': NoContent & {
    reference: string;
    sentAt: Date;
    reason: DeliveryRejectReason;
    quarantine?: {
      deliveryId: string;
      mailboxName: string;
      senderEmail: string;
      /** The scanner's name for what it found, e.g. "Eicar-Test-Signature". */
      signature: string;
    };
  };
  /** To a handler: a delivery arrived in a mailbox they read. */
  'delivery-notification': NoContent & {
    deliveryId: string;
    mailboxName: string;
    senderEmail: string;
    senderVerified: boolean;
    fileCount: number;
    totalBytes: number;
  };
  /** To the sender: a handler fetched one of the files (every time). */
  'download-receipt': NoContent & {
    reference: string;
    sentAt: Date;
    /** 1-based position of the file in the delivery. */
    fileNumber: number;
    fileBytes: number;
    /** Full SHA-256 of the plaintext, hex; the email shows its first 16 digits. */
    sha256: string;
    downloadedBy: string;
    downloadedAt: Date;
  };
  /** To a handler signing in by email. */
  'sign-in-link': NoContent & {
    link: string;
    expiresAt: Date;
  };
  /**
   * To a new user: they have an account. Where to sign in (by asking for a link there) and their
   * personal filedrop link; no secret, so the mail signs nobody in.
   */
  'user-invited': NoContent & {
    /** The address they sign in with. */
    email: string;
    filedropUrl: string;
  };
  /** To a sender proving they read the address they typed: the one-time code, nothing else. */
  'sender-code': NoContent & {
    /** Digits only. */
    code: string;
    expiresAt: Date;
  };
}

export type MailTemplate = keyof MailTemplates;

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

export interface RenderContext {
  /** Base URL of this instance, without trailing slash (config().publicUrl). */
  publicUrl: string;
}

/** What a template says, as plain strings; `renderMail` turns it into text and escaped HTML. */
interface MailBody {
  subject: string;
  paragraphs: string[];
  facts?: [label: string, value: string][];
  action?: { label: string; url: string };
  footer: string;
}

type Template<T extends MailTemplate> = (
  p: MailTemplates[T],
  f: Formatters,
  ctx: RenderContext,
) => Record<Locale, () => MailBody>;

// Recipients are in Sweden; a time without its zone would be ambiguous in a receipt.
const TIME_ZONE = 'Europe/Stockholm';
const INTL_LOCALE: Record<Locale, string> = { sv: 'sv-SE', en: 'en-GB' };

interface Formatters {
  date(d: Date): string;
  size(bytes: number): string;
  bytes(bytes: number): string;
  number(n: number): string;
}

function formatters(locale: Locale): Formatters {
  const tag = INTL_LOCALE[locale];
  const dateFormat = new Intl.DateTimeFormat(tag, {
    year: 'numeric',
    month: 'long',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    timeZone: TIME_ZONE,
    timeZoneName: 'short',
  });
  const number = new Intl.NumberFormat(tag);
  const decimal = new Intl.NumberFormat(tag, { maximumFractionDigits: 1 });
  return {
    date: (d) => {
      if (Number.isNaN(d.getTime())) throw new RangeError('invalid date in mail params');
      return dateFormat.format(d);
    },
    // Decimal units, as the mailbox limits are set (5 GB = 5 000 000 000 bytes).
    size: (bytes) => {
      const units = ['B', 'kB', 'MB', 'GB', 'TB'];
      let value = bytes;
      let unit = 0;
      while (value >= 1000 && unit < units.length - 1) {
        value /= 1000;
        unit++;
      }
      return `${unit === 0 ? number.format(value) : decimal.format(value)} ${units[unit]}`;
    },
    bytes: (bytes) => `${number.format(bytes)} ${locale === 'sv' ? 'byte' : bytes === 1 ? 'byte' : 'bytes'}`,
    number: (n) => number.format(n),
  };
}

const REJECT_REASONS: Record<DeliveryRejectReason, Record<Locale, string>> = {
  'manifest-unreadable': {
    sv: 'Leveransens innehållsförteckning kunde inte läsas.',
    en: "The delivery's list of contents could not be read.",
  },
  'manifest-mismatch': {
    sv: 'De uppladdade filerna stämde inte med leveransens innehållsförteckning.',
    en: "The uploaded files did not match the delivery's list of contents.",
  },
  'file-corrupt': {
    sv: 'En fil var skadad eller ofullständig: dess integritetskontroll stämde inte.',
    en: 'A file was damaged or incomplete: its integrity check failed.',
  },
  'file-mismatch': {
    sv: 'En fil stämde inte med innehållsförteckningen (storlek eller kontrollsumma).',
    en: 'A file did not match the list of contents (size or checksum).',
  },
  'too-large': {
    sv: 'Leveransen var större än vad brevlådan tar emot.',
    en: 'The delivery was larger than the mailbox accepts.',
  },
  infected: {
    sv: 'Virusskanningen hittade skadlig kod i en fil. Leveransen har stoppats och lämnas inte ut.',
    en: 'The malware scan found malicious code in a file. The delivery was stopped and will not be passed on.',
  },
};

const FOOTER: Record<Locale, string> = {
  sv: 'Det här är ett automatiskt meddelande från Inkast. Av säkerhetsskäl innehåller det aldrig leveransens ämne, meddelande eller filnamn.',
  en: 'This is an automatic message from Inkast. For security it never contains the subject, message or file names of a delivery.',
};

/** The first 16 hex digits, in groups of four: enough for a person to compare by eye. */
function sha256Prefix(hex: string): string {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new TypeError('sha256 must be a 64-digit hex digest');
  return `${hex.slice(0, 16).toLowerCase().replace(/(.{4})(?=.)/g, '$1 ')} …`;
}

/** To an administrator: a delivery was stopped by the malware scanner and kept in quarantine. */
function quarantineNotice(p: MailTemplates['delivery-rejected'], q: NonNullable<MailTemplates['delivery-rejected']['quarantine']>, f: Formatters) {
  return {
    sv: (): MailBody => ({
      subject: `Leverans ${p.reference} stoppad: skadlig kod hittades`,
      paragraphs: [
        `Virusskanningen hittade skadlig kod i en fil i en leverans till brevlådan ${q.mailboxName}.`,
        'Leveransen har avvisats och ligger i karantän: den visas inte för mottagarna och filerna kan inte hämtas. Avsändaren har fått besked.',
      ],
      facts: [
        ['Referens', p.reference],
        ['Brevlåda', q.mailboxName],
        ['Avsändare', q.senderEmail],
        ['Skickad', f.date(p.sentAt)],
        ['Fynd', q.signature],
        ['Leverans-id', q.deliveryId],
      ],
      footer: FOOTER.sv,
    }),
    en: (): MailBody => ({
      subject: `Delivery ${p.reference} stopped: malware found`,
      paragraphs: [
        `The malware scan found malicious code in a file of a delivery to the mailbox ${q.mailboxName}.`,
        'The delivery was rejected and is kept in quarantine: its recipients do not see it and its files cannot be downloaded. The sender has been told.',
      ],
      facts: [
        ['Reference', p.reference],
        ['Mailbox', q.mailboxName],
        ['Sender', q.senderEmail],
        ['Sent', f.date(p.sentAt)],
        ['Finding', q.signature],
        ['Delivery id', q.deliveryId],
      ],
      footer: FOOTER.en,
    }),
  };
}

const templates: { [T in MailTemplate]: Template<T> } = {
  'delivery-rejected': (p, f) => (p.quarantine ? quarantineNotice(p, p.quarantine, f) : {
    sv: () => ({
      subject: `Din leverans ${p.reference} kunde inte tas emot`,
      paragraphs: [
        `Leveransen du skickade ${f.date(p.sentAt)} med referens ${p.reference} kunde inte tas emot, och inget av den har lämnats till mottagaren.`,
        `Orsak: ${REJECT_REASONS[p.reason].sv}`,
        p.reason === 'infected'
          ? 'Kontrollera filerna med ett uppdaterat antivirusprogram innan du skickar dem igen.'
          : 'Skicka gärna leveransen igen via samma länk.',
      ],
      footer: FOOTER.sv,
    }),
    en: () => ({
      subject: `Your delivery ${p.reference} could not be accepted`,
      paragraphs: [
        `The delivery you sent on ${f.date(p.sentAt)} with reference ${p.reference} could not be accepted, and none of it has been passed on to the recipient.`,
        `Reason: ${REJECT_REASONS[p.reason].en}`,
        p.reason === 'infected'
          ? 'Please check the files with up-to-date antivirus software before sending them again.'
          : 'Please send it again using the same link.',
      ],
      footer: FOOTER.en,
    }),
  }),

  'delivery-notification': (p, f, ctx) => {
    const url = `${ctx.publicUrl}/inbox/deliveries/${encodeURIComponent(p.deliveryId)}`;
    return {
      sv: () => ({
        subject: `Ny leverans till ${p.mailboxName}`,
        paragraphs: [`En ny leverans har kommit till brevlådan ${p.mailboxName}.`],
        facts: [
          ['Avsändare', `${p.senderEmail} (${p.senderVerified ? 'verifierad e-postadress' : 'e-postadressen är inte verifierad'})`],
          ['Filer', f.number(p.fileCount)],
          ['Total storlek', f.size(p.totalBytes)],
        ],
        action: { label: 'Öppna leveransen i Inkast', url },
        footer: FOOTER.sv,
      }),
      en: () => ({
        subject: `New delivery to ${p.mailboxName}`,
        paragraphs: [`A new delivery has arrived in the mailbox ${p.mailboxName}.`],
        facts: [
          ['Sender', `${p.senderEmail} (${p.senderVerified ? 'verified email address' : 'email address not verified'})`],
          ['Files', f.number(p.fileCount)],
          ['Total size', f.size(p.totalBytes)],
        ],
        action: { label: 'Open the delivery in Inkast', url },
        footer: FOOTER.en,
      }),
    };
  },

  'download-receipt': (p, f) => {
    const digest = sha256Prefix(p.sha256);
    return {
      sv: () => ({
        subject: `Kvitto: fil ${f.number(p.fileNumber)} i leverans ${p.reference} har hämtats`,
        paragraphs: [`En fil i leveransen du skickade ${f.date(p.sentAt)} har hämtats av mottagaren.`],
        facts: [
          ['Referens', p.reference],
          ['Skickad', f.date(p.sentAt)],
          ['Fil nummer', f.number(p.fileNumber)],
          ['Storlek', `${f.size(p.fileBytes)} (${f.bytes(p.fileBytes)})`],
          ['SHA-256 (början)', digest],
          ['Hämtad av', p.downloadedBy],
          ['Hämtad', f.date(p.downloadedAt)],
        ],
        footer: FOOTER.sv,
      }),
      en: () => ({
        subject: `Receipt: file ${f.number(p.fileNumber)} of delivery ${p.reference} was downloaded`,
        paragraphs: [`A file of the delivery you sent on ${f.date(p.sentAt)} has been downloaded by the recipient.`],
        facts: [
          ['Reference', p.reference],
          ['Sent', f.date(p.sentAt)],
          ['File number', f.number(p.fileNumber)],
          ['Size', `${f.size(p.fileBytes)} (${f.bytes(p.fileBytes)})`],
          ['SHA-256 (start)', digest],
          ['Downloaded by', p.downloadedBy],
          ['Downloaded', f.date(p.downloadedAt)],
        ],
        footer: FOOTER.en,
      }),
    };
  },

  'sign-in-link': (p, f) => {
    if (!/^https?:\/\//.test(p.link)) throw new TypeError('sign-in link must be an http(s) URL');
    return {
      sv: () => ({
        subject: 'Logga in i Inkast',
        paragraphs: [
          `Använd länken nedan för att logga in i Inkast. Den gäller till ${f.date(p.expiresAt)}.`,
          'Om det inte var du som bad om att logga in kan du bortse från det här meddelandet.',
        ],
        action: { label: 'Logga in', url: p.link },
        footer: FOOTER.sv,
      }),
      en: () => ({
        subject: 'Sign in to Inkast',
        paragraphs: [
          `Use the link below to sign in to Inkast. It is valid until ${f.date(p.expiresAt)}.`,
          'If you did not ask to sign in, you can ignore this message.',
        ],
        action: { label: 'Sign in', url: p.link },
        footer: FOOTER.en,
      }),
    };
  },

  'user-invited': (p, _f, ctx) => {
    if (!/^https?:\/\//.test(p.filedropUrl)) throw new TypeError('a filedrop link must be an http(s) URL');
    const signIn = `${ctx.publicUrl}/signin`;
    return {
      sv: () => ({
        subject: 'Du har ett konto i Inkast',
        paragraphs: [
          `En administratör har skapat ett konto åt dig i Inkast, där du tar emot krypterade filer. Du loggar in med e-postadressen ${p.email} på ${signIn} och får en inloggningslänk med e-post.`,
          `Du har en egen brevlåda. Den som ska skicka filer till dig använder din personliga länk: ${p.filedropUrl}`,
        ],
        action: { label: 'Logga in i Inkast', url: signIn },
        footer: FOOTER.sv,
      }),
      en: () => ({
        subject: 'You have an Inkast account',
        paragraphs: [
          `An administrator has created an account for you in Inkast, where you receive encrypted files. Sign in with the address ${p.email} at ${signIn}; a sign-in link is then sent to you by email.`,
          `You have a mailbox of your own. Anyone sending you files uses your personal link: ${p.filedropUrl}`,
        ],
        action: { label: 'Sign in to Inkast', url: signIn },
        footer: FOOTER.en,
      }),
    };
  },

  'sender-code': (p, f) => {
    if (!/^[0-9]{6,8}$/.test(p.code)) throw new TypeError('a sender code is 6 to 8 digits');
    return {
      sv: () => ({
        subject: 'Din kod för att skicka filer via Inkast',
        paragraphs: [
          'Skriv in koden nedan på sidan där du skickar filerna. Den bekräftar att du kan läsa e-post till den här adressen.',
          `Koden gäller till ${f.date(p.expiresAt)} och kan bara användas en gång.`,
          'Om det inte var du som bad om koden kan du bortse från det här meddelandet. Utan koden kan ingen skicka filer i ditt namn.',
        ],
        facts: [['Kod', p.code]],
        footer: FOOTER.sv,
      }),
      en: () => ({
        subject: 'Your code for sending files with Inkast',
        paragraphs: [
          'Enter the code below on the page where you are sending the files. It confirms that you can read email to this address.',
          `The code is valid until ${f.date(p.expiresAt)} and can be used once.`,
          'If you did not ask for a code, you can ignore this message. Nobody can send files in your name without it.',
        ],
        facts: [['Code', p.code]],
        footer: FOOTER.en,
      }),
    };
  },
};

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
// A subject is a header: a line break in a mailbox name must not start a new one.
const oneLine = (s: string) => s.replace(/[\r\n\t]+/g, ' ').trim();

function toText(b: MailBody): string {
  const parts = [...b.paragraphs];
  if (b.facts) parts.push(b.facts.map(([label, value]) => `${label}: ${value}`).join('\n'));
  if (b.action) parts.push(`${b.action.label}:\n${b.action.url}`);
  parts.push(`-- \n${b.footer}`);
  return `${parts.join('\n\n')}\n`;
}

function toHtml(b: MailBody, locale: Locale): string {
  const e = escapeHtml;
  const muted = 'color:#555;font-size:14px';
  const body = [
    ...b.paragraphs.map((p) => `<p>${e(p)}</p>`),
    b.facts &&
      `<table role="presentation" style="border-collapse:collapse;margin:16px 0">${b.facts
        .map(
          ([label, value]) =>
            `<tr><th scope="row" style="text-align:left;padding:4px 16px 4px 0;font-weight:600;vertical-align:top">${e(label)}</th><td style="padding:4px 0">${e(value)}</td></tr>`,
        )
        .join('')}</table>`,
    b.action &&
      `<p style="margin:24px 0"><a href="${e(b.action.url)}" style="background:#0b5cad;color:#fff;padding:10px 18px;border-radius:4px;text-decoration:none;display:inline-block">${e(b.action.label)}</a></p>` +
        `<p style="${muted};word-break:break-all">${e(b.action.url)}</p>`,
    `<hr style="border:none;border-top:1px solid #ddd;margin:24px 0"><p style="${muted}">${e(b.footer)}</p>`,
  ].filter(Boolean);
  return (
    `<!doctype html><html lang="${locale}"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><title>${e(b.subject)}</title></head>` +
    `<body style="font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a;max-width:600px;margin:0 auto;padding:24px">` +
    `${body.join('\n')}</body></html>\n`
  );
}

/** Renders one template in one language. Throws on params a template cannot show safely. */
export function renderMail<T extends MailTemplate>(
  template: T,
  locale: Locale,
  params: MailTemplates[T],
  ctx: RenderContext,
): RenderedMail {
  const make = templates[template] as Template<T>;
  const body = make(params, formatters(locale), ctx)[locale]();
  const subject = oneLine(body.subject);
  return { subject, text: toText(body), html: toHtml({ ...body, subject }, locale) };
}
