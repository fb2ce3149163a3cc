// GET / and /assets/: the page as scripts/build-web.mjs builds it, its headers, its size, --no-webui.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { buildWeb } from '../../../scripts/build-web.mjs';
import { buildApp } from '../../../src/server/app.ts';
import { CONTENT_SECURITY_POLICY } from '../../../src/server/routes/webui.ts';
import { stubDeps } from '../stub-deps.ts';

const dir = mkdtempSync(join(tmpdir(), 'webui-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const files = buildWeb(dir);
const KEY = 'sk-webui';

function appWith(options: { apiKeys?: string[]; webui?: boolean | { dir: string } } = {}) {
  const deps = stubDeps({ config: { ctxPerSlot: 256, slots: 2, apiKeys: options.apiKeys ?? [] } });
  const app = buildApp(deps, { ready: true, webui: options.webui ?? { dir } });
  t.teardown(() => app.close());
  return app;
}

/** The bundles index.html names. */
function assetsOf(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] ?? '');
}

t.test('the page loads in under 100 KB gzipped (index.html and the bundles it names)', async (t) => {
  const gz = files.reduce((n, f) => n + f.gzipBytes, 0);
  t.same(
    files.map((f) => f.file.replace(/-[A-Z0-9]+\./, '-HASH.')),
    ['index.html', 'assets/app-HASH.js', 'assets/app-HASH.css'],
  );
  t.ok(gz < 100 * 1024, `gzipped: ${(gz / 1024).toFixed(1)} KiB`);
  // What the server sends is what was measured: a gzip client gets exactly these bytes.
  const app = appWith();
  let sent = 0;
  const page = await app.inject({ method: 'GET', url: '/', headers: { 'accept-encoding': 'gzip' } });
  sent += page.rawPayload.length;
  const html = gunzipSync(page.rawPayload).toString();
  for (const url of assetsOf(html))
    sent += (await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'gzip' } })).rawPayload.length;
  t.equal(sent, gz, 'bytes on the wire for a first load');
});

t.test('GET /: the page, never cached, with a content security policy', async (t) => {
  const app = appWith();
  const res = await app.inject({ method: 'GET', url: '/' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/html/);
  t.equal(res.headers['cache-control'], 'no-cache');
  t.equal(res.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
  t.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/, 'no inline or remote script');
  t.equal(res.headers['x-content-type-options'], 'nosniff');
  t.equal(res.body, readFileSync(join(dir, 'index.html'), 'utf8'));
  const assets = assetsOf(res.body);
  t.equal(assets.length, 2, 'one script, one stylesheet');
  t.notMatch(res.body, /https?:\/\//, 'nothing from elsewhere (works offline)');
});

t.test('/assets/: content types, a year of caching, compressed as built', async (t) => {
  const app = appWith();
  const html = (await app.inject({ method: 'GET', url: '/' })).body;
  for (const url of assetsOf(html)) {
    const raw = readFileSync(join(dir, url));
    const type = url.endsWith('.js') ? /^application\/javascript/ : /^text\/css/;
    const plain = await app.inject({ method: 'GET', url });
    t.equal(plain.statusCode, 200, url);
    t.match(plain.headers['content-type'], type);
    t.equal(plain.headers['content-encoding'], undefined);
    t.same(plain.rawPayload, raw, 'uncompressed when not asked for');
    t.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    const gz = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'gzip' } });
    t.equal(gz.headers['content-encoding'], 'gzip');
    t.match(gz.headers.vary, /accept-encoding/i);
    t.same(gunzipSync(gz.rawPayload), raw);
    const br = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'br, gzip' } });
    t.equal(br.headers['content-encoding'], 'br');
  }
  const missing = await app.inject({ method: 'GET', url: '/assets/nope.js' });
  t.equal(missing.statusCode, 404);
  t.equal(missing.json().error.type, 'not_found_error');
  const outside = await app.inject({ method: 'GET', url: '/assets/../index.html' });
  t.not(outside.statusCode, 200, 'no way out of the assets folder');
});

t.test('with an API key: the page is open, the API is not', async (t) => {
  const app = appWith({ apiKeys: [KEY] });
  const page = await app.inject({ method: 'GET', url: '/' });
  t.equal(page.statusCode, 200);
  for (const url of assetsOf(page.body)) t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
  t.equal((await app.inject({ method: 'GET', url: '/v1/models' })).statusCode, 401);
  t.equal(
    (await app.inject({ method: 'GET', url: '/assets/nope.js' })).statusCode,
    401,
    'an unknown path is an unknown route: key first, as everywhere',
  );
});

t.test('--no-webui: GET / is an unknown route', async (t) => {
  const app = appWith({ webui: false });
  const res = await app.inject({ method: 'GET', url: '/' });
  t.equal(res.statusCode, 404);
  t.equal(res.json().error.type, 'not_found_error');
});

t.test('not built: GET / says how to build it', async (t) => {
  const app = appWith({ webui: { dir: join(dir, 'absent') } });
  const res = await app.inject({ method: 'GET', url: '/' });
  t.equal(res.statusCode, 503);
  t.match(res.json().error, { code: 'webui_not_built', message: /npm run build:web.*--no-webui/ });
});
