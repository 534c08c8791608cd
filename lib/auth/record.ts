import { audit } from '@/lib/audit';
import type { Queryable } from '@/lib/db';

export type SignInMethod = 'email-link' | 'oidc';

export type SignInRefusal =
  | 'unknown-address'
  | 'disabled'
  | 'throttled'
  | 'link-invalid'
  | 'link-used'
  | 'link-expired'
  | 'unknown-user'
  | 'email-unverified'
  | 'oidc-error';

/** What happened at the door. Never carries a token, a code or a secret. */
export type SignInEvent =
  | { kind: 'link-sent'; userId: string }
  | { kind: 'signed-in'; method: SignInMethod; userId: string }
  | { kind: 'refused'; method: SignInMethod; reason: SignInRefusal; userId?: string; email?: string }
  | { kind: 'signed-out'; userId: string };

/**
 * Writes the event to the audit log, inside `q`: pass the transaction of the event (the audit
 * chain must be written in one). Of an address nobody signed in as, only the domain is kept:
 * the log is append-only, and anyone can type anyone's address into the form. An address an
 * OpenID Provider vouched for is kept whole, so an admin can see who was turned away.
 */
export async function recordSignIn(q: Queryable, event: SignInEvent): Promise<void> {
  const actor = 'userId' in event && event.userId ? `user:${event.userId}` : 'system';
  const target = 'userId' in event && event.userId ? `user:${event.userId}` : null;
  switch (event.kind) {
    case 'link-sent':
      await audit(q, { actor, action: 'auth.sign-in-link-sent', target });
      return;
    case 'signed-in':
      await audit(q, { actor, action: 'auth.signed-in', target, detail: { method: event.method } });
      return;
    case 'signed-out':
      await audit(q, { actor, action: 'auth.signed-out', target });
      return;
    case 'refused': {
      const address = event.email && (event.method === 'oidc' ? { email: event.email } : { emailDomain: event.email.split('@').pop() });
      await audit(q, { actor, action: 'auth.sign-in-refused', target, detail: { method: event.method, reason: event.reason, ...address } });
      return;
    }
  }
}
