import { db } from '@/lib/db';
import { recordSignIn } from './record';
import { clearSessionCookie, readSession, type CookieJar } from './session';

/**
 * Ends the session: the cookie is cleared and the user's session_epoch bumped. A sealed cookie
 * cannot be revoked on its own, so a copy taken earlier (a shared workstation, a proxy log) would
 * otherwise stay valid until it idles out; the price is that the user's other browsers sign out too.
 */
export async function signOut(jar: CookieJar): Promise<void> {
  const session = await readSession(jar);
  clearSessionCookie(jar);
  if (!session) return;
  await (await db()).transaction(async (tx) => {
    await tx.query(`UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1 AND session_epoch = $2`, [
      session.user.id,
      session.data.epoch,
    ]);
    await recordSignIn(tx, { kind: 'signed-out', userId: session.user.id });
  });
}
