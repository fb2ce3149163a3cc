// Cross-origin access: off unless --cors-origins asks for it; then llama-server's headers, spelled as it spells
// them, for the origins allowed and for no others.
import t from 'tap';
import { buildApp } from '../../src/server/app.ts';
import { originAllowed } from '../../src/server/cors.ts';
import { stubDeps } from './stub-deps.ts';

const preflight = {
  method: 'OPTIONS' as const,
  url: '/completions',
  headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'Authorization' },
};

/** Raw header names as sent (inject lower-cases its `headers` object; rawHeaders keeps the spelling). */
function rawNames(res: { raw: { res: { getHeaderNames(): string[] } } }): string[] {
  return (res.raw.res as unknown as { getRawHeaderNames(): string[] }).getRawHeaderNames();
}

t.test('off by default: preflights answer 200 without allowing anything', async (t) => {
  const app = buildApp(stubDeps(), { ready: true, webui: false });
  t.teardown(() => app.close());
  const res = await app.inject({ ...preflight, headers: { ...preflight.headers, origin: 'http://localhost:3000' } });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['access-control-allow-origin'], undefined);
  // Nor on the answers themselves: a page elsewhere cannot read them.
  for (const origin of ['http://localhost:3000', 'https://evil.example', 'null']) {
    const get = await app.inject({ method: 'GET', url: '/health', headers: { origin } });
    t.equal(get.statusCode, 200);
    t.same(
      Object.keys(get.headers).filter((h) => h.startsWith('access-control-')),
      [],
      `no CORS header for ${origin}`,
    );
  }
});

t.test('--cors-origins localhost: loopback origins on any port are reflected, others are not', async (t) => {
  const app = buildApp(stubDeps({ config: { ctxPerSlot: 256, slots: 2, corsOrigins: ['localhost'] } }), {
    ready: true,
    webui: false,
  });
  t.teardown(() => app.close());
  for (const origin of ['http://localhost', 'http://localhost:8080', 'http://127.0.0.1:3000', 'http://[::1]:3000']) {
    const res = await app.inject({ ...preflight, headers: { ...preflight.headers, origin } });
    t.equal(res.headers['access-control-allow-origin'], origin, origin);
    t.equal(res.headers['access-control-allow-credentials'], 'true');
    t.equal(res.headers['access-control-allow-methods'], 'GET, POST, DELETE, OPTIONS');
    t.ok(rawNames(res).includes('Access-Control-Allow-Origin'), "spelled as llama-server's clients read it");
  }
  for (const origin of ['http://evil.com', 'http://localhost.evil.com', 'http://notlocalhost', 'file://x']) {
    const res = await app.inject({ ...preflight, headers: { ...preflight.headers, origin } });
    t.equal(res.statusCode, 200);
    t.equal(res.headers['access-control-allow-origin'], undefined, `${origin} is not allowed`);
  }
  const health = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'http://localhost:5173' } });
  t.equal(health.headers['access-control-allow-origin'], 'http://localhost:5173', 'plain requests get it too');
});

t.test('origin matching', async (t) => {
  t.ok(originAllowed('https://app.example', ['https://app.example']));
  t.notOk(originAllowed('https://app.example.evil', ['https://app.example']));
  t.ok(originAllowed('anything', ['*']));
  t.notOk(originAllowed('http://localhost', []));
});
