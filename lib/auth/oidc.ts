/**
 * Sign-in through an OpenID Provider (SITHS/Inera, BankID brokers, Entra ID …): authorization
 * code with PKCE, state and nonce kept in a short-lived sealed cookie. The provider proves who
 * the person is; Inkast decides whether they may enter: only existing, enabled users, matched by
 * the configured claim against their email address. Nobody is created here.
 */
import * as client from 'openid-client';
import { config, type Config } from '@/lib/config';
import { logger, type Logger } from '@/lib/log';
import { db } from '@/lib/db';
import { HttpError } from '@/lib/http';
import type { User } from '@/lib/mailboxes';
import { safeNextPath } from './next-path';
import { recordSignIn, type SignInRefusal } from './record';
import { cookieOptions, seal, startSession, unseal, type CookieJar } from './session';
import { findAuthUser, publicUser } from './users';

const FLOW_COOKIE = 'inkast_oidc';
/** How long a person may spend at the provider between start and callback. */
const FLOW_TTL_MS = 10 * 60_000;
const FLOW_COOKIE_PATH = '/auth/oidc';

type OidcSettings = NonNullable<Config['oidc']>;

interface Flow {
  state: string;
  nonce: string;
  verifier: string;
  next: string;
}

const g = globalThis as typeof globalThis & {
  __inkastOidcClients?: WeakMap<Config, Promise<client.Configuration>>;
  __inkastOidcLog?: Logger;
};
const log = () => (g.__inkastOidcLog ??= logger('oidc'));

export function oidcEnabled(): boolean {
  return config().oidc !== undefined;
}

function callbackUrl(): string {
  return `${config().publicUrl}/auth/oidc/callback`;
}

/** The provider's discovered configuration, once per Config; a failed discovery is retried next time. */
function oidcClient(c: Config, settings: OidcSettings): Promise<client.Configuration> {
  const cache = (g.__inkastOidcClients ??= new WeakMap());
  let found = cache.get(c);
  if (!found) {
    const issuer = new URL(settings.issuer);
    found = client.discovery(
      issuer,
      settings.clientId,
      undefined,
      // client_secret_basic is the OpenID default; without a secret, a public client relying on PKCE.
      settings.clientSecret ? client.ClientSecretBasic(settings.clientSecret) : client.None(),
      // Plain http only reaches a provider on loopback (lib/config refuses anything else).
      { execute: issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [], timeout: 10 },
    );
    found.catch(() => cache.delete(c));
    cache.set(c, found);
  }
  return found;
}

function requireSettings(): { c: Config; settings: OidcSettings } {
  const c = config();
  if (!c.oidc) throw new HttpError(404, 'oidc-not-configured', 'Sign-in through OpenID Connect is not configured');
  return { c, settings: c.oidc };
}

/**
 * Remembers state, nonce and PKCE verifier in the flow cookie; returns where to send the browser,
 * or a problem when the provider cannot be reached.
 */
export async function startOidcSignIn(
  jar: CookieJar,
  next: unknown,
): Promise<{ ok: true; location: string } | { ok: false; problem: 'oidc-failed' }> {
  const { c, settings } = requireSettings();
  let provider: client.Configuration;
  try {
    provider = await oidcClient(c, settings);
  } catch (err) {
    logFailure(err, 'OpenID Provider discovery failed');
    return { ok: false, problem: 'oidc-failed' };
  }
  const flow: Flow = {
    state: client.randomState(),
    nonce: client.randomNonce(),
    verifier: client.randomPKCECodeVerifier(),
    next: safeNextPath(next),
  };
  const url = client.buildAuthorizationUrl(provider, {
    redirect_uri: callbackUrl(),
    scope: settings.scopes,
    code_challenge: await client.calculatePKCECodeChallenge(flow.verifier),
    code_challenge_method: 'S256',
    state: flow.state,
    nonce: flow.nonce,
  });
  // SameSite=Lax still travels with the provider's top-level redirect back to the callback.
  jar.set(FLOW_COOKIE, await seal(flow, FLOW_TTL_MS), cookieOptions({ path: FLOW_COOKIE_PATH, maxAge: FLOW_TTL_MS / 1000 }));
  return { ok: true, location: url.href };
}

/** Names the failure for the operator; openid-client's messages carry no tokens. */
function logFailure(err: unknown, what: string): void {
  log().warn({ err: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, what);
}

export type OidcProblem = 'oidc-failed' | 'oidc-unverified' | 'no-access';

function isFlow(d: Record<string, unknown> | undefined): d is Record<string, unknown> & Flow {
  return ['state', 'nonce', 'verifier', 'next'].every((k) => typeof d?.[k] === 'string');
}

/** The value of the configured claim, as an address to compare with users.email. */
function claimedAddress(claims: Record<string, unknown>, claim: string): string | undefined {
  const value = claims[claim];
  return typeof value === 'string' && value.trim() ? value.trim().toLowerCase() : undefined;
}

/**
 * Completes the flow from the callback's query string: exchanges the code (checking state,
 * nonce and PKCE), reads the claim (from the ID token, else from userinfo) and starts the session.
 */
export async function finishOidcSignIn(
  jar: CookieJar,
  search: string,
): Promise<{ ok: true; user: User; next: string } | { ok: false; problem: OidcProblem; next: string }> {
  const { c, settings } = requireSettings();
  const database = await db();
  const sealed = jar.get(FLOW_COOKIE)?.value;
  jar.set(FLOW_COOKIE, '', cookieOptions({ path: FLOW_COOKIE_PATH, maxAge: 0 })); // one callback per flow
  const flow = sealed ? await unseal(sealed, FLOW_TTL_MS) : undefined;
  const next = isFlow(flow) ? flow.next : safeNextPath(undefined);
  const refuse = async (problem: OidcProblem, reason: SignInRefusal, userId?: string, email?: string) => {
    await database.transaction((tx) => recordSignIn(tx, { kind: 'refused', method: 'oidc', reason, userId, email }));
    return { ok: false as const, problem, next };
  };
  if (!isFlow(flow)) return refuse('oidc-failed', 'oidc-error');

  let claims: Record<string, unknown>;
  try {
    const provider = await oidcClient(c, settings);
    const tokens = await client.authorizationCodeGrant(provider, new URL(`${callbackUrl()}${search}`), {
      pkceCodeVerifier: flow.verifier,
      expectedState: flow.state,
      expectedNonce: flow.nonce,
      idTokenExpected: true,
    });
    const idToken = tokens.claims()!;
    claims = { ...idToken };
    // In the code flow many providers put profile claims in userinfo only.
    if (claimedAddress(claims, settings.userClaim) === undefined && provider.serverMetadata().userinfo_endpoint) {
      claims = { ...(await client.fetchUserInfo(provider, tokens.access_token, idToken.sub)), ...idToken };
    }
  } catch (err) {
    logFailure(err, 'OpenID Connect sign-in failed');
    return refuse('oidc-failed', 'oidc-error');
  }

  const address = claimedAddress(claims, settings.userClaim);
  if (!address) return refuse('oidc-failed', 'oidc-error');
  // Some providers send the flag as a string.
  if (settings.userClaim === 'email' && (claims.email_verified === false || claims.email_verified === 'false')) {
    return refuse('oidc-unverified', 'email-unverified', undefined, address);
  }
  const user = await findAuthUser(database, { email: address });
  if (!user) return refuse('no-access', 'unknown-user', undefined, address);
  if (user.disabled_at !== null) return refuse('no-access', 'disabled', user.id);
  await database.transaction((tx) => recordSignIn(tx, { kind: 'signed-in', method: 'oidc', userId: user.id }));
  await startSession(jar, user);
  return { ok: true, user: publicUser(user), next: flow.next };
}
