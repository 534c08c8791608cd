import type { Queryable } from '@/lib/db';
import type { User } from '@/lib/mailboxes';

/** A user with the session epoch a session must carry to be valid. */
export interface AuthUser extends User {
  session_epoch: number;
}

const COLUMNS = 'id, email, display_name, role, locale, disabled_at, session_epoch';

/** The user by id or (lower-cased) email; `lock` holds the row to the end of the transaction. */
export async function findAuthUser(
  q: Queryable,
  by: { id: string } | { email: string },
  lock = false,
): Promise<AuthUser | undefined> {
  if ('id' in by && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(by.id)) return undefined;
  const [column, value] = 'id' in by ? ['id', by.id] : ['email', by.email.trim().toLowerCase()];
  const r = await q.query<AuthUser>(`SELECT ${COLUMNS} FROM users WHERE ${column} = $1${lock ? ' FOR UPDATE' : ''}`, [value]);
  return r.rows[0];
}

/** The user as the rest of the app sees it (the epoch stays inside lib/auth). */
export function publicUser({ session_epoch: _epoch, ...user }: AuthUser): User {
  return user;
}
