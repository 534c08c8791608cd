import type { NextConfig } from 'next';

const nextConfig: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // A separate build directory per checkout or engineer, so parallel builds do not collide.
  distDir: process.env.INKAST_NEXT_DIST_DIR || '.next',
  // pg, pino and the tus stores are plain Node libraries; bundling them gains nothing.
  serverExternalPackages: ['pg', 'pino', '@tus/server', '@tus/s3-store', '@tus/file-store', 'nodemailer'],
};

export default nextConfig;
