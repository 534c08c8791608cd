import type { NextConfig } from 'next';

const nextConfig: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // pg, pino and the tus stores are plain Node libraries; bundling them gains nothing.
  serverExternalPackages: ['pg', 'pino', '@tus/server', '@tus/s3-store', '@tus/file-store', 'nodemailer'],
};

export default nextConfig;
