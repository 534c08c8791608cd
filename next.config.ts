import type { NextConfig } from 'next';
import { staticHeaderRules } from './lib/security/headers';

const nextConfig: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // forbidden() in admin pages: a real 403 with app/forbidden.tsx, not a 200 that says no.
  experimental: { authInterrupts: true },
  // A separate build directory per checkout or engineer, so parallel builds do not collide.
  distDir: process.env.INKAST_NEXT_DIST_DIR || '.next',
  // tus answers do not pass proxy.ts (it must never match the upload path): their headers come from here.
  headers: async () => staticHeaderRules((process.env.INKAST_PUBLIC_URL ?? '').startsWith('https://')),
  // pg, pino and the tus stores are plain Node libraries; bundling them gains nothing. openpgp and
  // zod too, and bundled they cost memory: Turbopack put a copy of openpgp (1.2 MB of source) in
  // each route group's server chunk, and every copy a process loads is evaluated again.
  serverExternalPackages: ['pg', 'pino', '@tus/server', '@tus/s3-store', '@tus/file-store', 'nodemailer', 'openpgp', 'zod'],
};

export default nextConfig;
