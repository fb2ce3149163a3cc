// GET / serves the web page built into dist/webui by scripts/build-web.mjs: index.html (never cached, so a
// new build is picked up at once) and its bundles under /assets/ (content-hashed names: cached for a year),
// each sent gzip- or brotli-compressed as built when the client accepts it. Open without an API key, as
// llama-server's page is: the page itself asks for the key, and every API route still wants it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import { projectRoot } from '../../paths.ts';
import { ApiError } from '../errors.ts';

export const WEBUI_DIR = join(projectRoot, 'dist', 'webui');

/**
 * What the page may load: only its own scripts and styles, and only this server to talk to. Model output is
 * sanitised before it is rendered; this is the second lock on the same door.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // uPlot and the page set style attributes from script.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface WebuiRoutesOptions {
  /** The build output. Default dist/webui in the project. */
  dir?: string;
}

export const webuiRoutes: FastifyPluginAsync<WebuiRoutesOptions> = async (app, options) => {
  const dir = options.dir ?? WEBUI_DIR;
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, public: true };
  });
  if (!existsSync(join(dir, 'index.html'))) {
    app.get('/', async () => {
      throw new ApiError(
        503,
        'unavailable_error',
        `The web page is not built (no ${join(dir, 'index.html')}): run \`npm run build:web\` (npm ci does it), or start the server with --no-webui.`,
        { code: 'webui_not_built' },
      );
    });
    return;
  }
  await app.register(fastifyStatic, {
    root: join(dir, 'assets'),
    prefix: '/assets/',
    wildcard: false,
    globIgnore: ['**/*.gz', '**/*.br'],
    index: false,
    preCompressed: true,
    immutable: true,
    maxAge: '365d',
  });
  app.get('/', (_request, reply) =>
    reply
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      // Always revalidated (it names the current bundles); sendFile sets no cache-control of its own here.
      .header('cache-control', 'no-cache')
      .sendFile('index.html', dir, { cacheControl: false }),
  );
};
