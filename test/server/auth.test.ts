// API keys (src/server/auth.ts): every route is behind them but llama-server's public ones (/health, /v1/health,
// the web page's files) and CORS preflights; keys are compared as equal-length digests, so a key of any length,
// a prefix or an extension of a real one is a plain 401, never a comparison that throws.
import type { FastifyInstance, HTTPMethods } from 'fastify';
import t from 'tap';
import { buildApp } from '../../src/server/app.ts';
import { stubDeps } from './stub-deps.ts';

const KEY = 'sk-the-real-key-0123456789';

function lockedApp(routes: Array<{ method: string; url: string }>): FastifyInstance {
  const deps = stubDeps({
    config: {
      ctxPerSlot: 256,
      slots: 2,
      apiKeys: [KEY, 'sk-second'],
      endpoints: { metrics: true, props: true, slots: true },
      slotSavePath: '/nonexistent-slot-dir',
    },
    metrics: {
      responded: () => {},
      interTokenGap: () => {},
      rejected: () => {},
      exposition: async () => ({ contentType: 'text/plain', body: 'llamacpp:secret 1\n' }),
    },
  });
  const app = buildApp(deps, {
    ready: true,
    webui: true,
  });
  app.addHook('onRoute', (route) => {
    for (const method of ([] as string[]).concat(route.method as HTTPMethods | HTTPMethods[]))
      routes.push({ method, url: route.url });
  });
  return app;
}

t.test('with --api-key, every route but /health, /v1/health, the web page and preflights answers 401', async (t) => {
  const routes: Array<{ method: string; url: string }> = [];
  const app = lockedApp(routes);
  t.teardown(() => app.close());
  await app.ready();
  t.ok(routes.length > 40, `${routes.length} routes seen`);
  for (const path of ['/metrics', '/slots', '/props', '/slots/:id', '/v1/chat/completions', '/v1/models'])
    t.ok(
      routes.some((r) => r.url === path),
      `${path} is among them`,
    );
  const open: string[] = [];
  for (const r of routes) {
    if (r.method === 'HEAD') continue;
    const method = r.method as HTTPMethods;
    const url = r.url.replace(/:[a-zA-Z_]+/g, '0');
    const res = await app.inject({ method, url, ...(method === 'GET' ? {} : { payload: {} }) });
    if (res.statusCode !== 401) {
      open.push(`${method} ${r.url.replace(/\/assets\/.*/, '/assets/*')}`);
      continue;
    }
    // OpenAI's error shape, Anthropic's on the Messages routes: both say authentication_error.
    t.match(res.json(), { error: { type: 'authentication_error' } }, `${method} ${url}`);
    t.notMatch(res.body, /llamacpp:secret/);
  }
  t.same(
    [...new Set(open)].sort(),
    ['GET /', 'GET /assets/*', 'GET /health', 'GET /v1/health'],
    "what answers without a key: llama-server's public endpoints (server-http.cpp) and the web page's files",
  );
  const preflight = await app.inject({ method: 'OPTIONS', url: '/v1/chat/completions' });
  t.equal(preflight.statusCode, 200, 'a preflight needs no key (browsers send none)');
  t.equal(preflight.body, '');
  const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${KEY}` } });
  t.equal(metrics.statusCode, 200, 'with the key, /metrics answers');
  t.match(metrics.body, /llamacpp:secret/);
  const props = await app.inject({ method: 'GET', url: '/props', headers: { 'x-api-key': 'sk-second' } });
  t.equal(props.statusCode, 200, 'with the other key, /props answers');
});

t.test('keys of any length, prefixes and extensions of the real one are refused alike (401, never 500)', async (t) => {
  const app = lockedApp([]);
  t.teardown(() => app.close());
  const tries = ['', 'x', KEY.slice(0, -1), `${KEY}x`, `x${KEY}`, KEY.toUpperCase(), 'k'.repeat(10_000), 'ключ'];
  for (const key of tries) {
    for (const headers of [{ authorization: `Bearer ${key}` }, { 'x-api-key': key }]) {
      const res = await app.inject({ method: 'GET', url: '/v1/models', headers });
      t.equal(res.statusCode, 401, `${Object.keys(headers)[0]} of ${key.length} characters`);
    }
  }
  t.equal(
    (await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Bearer ${KEY}` } })).statusCode,
    200,
  );
  // Authorization wins over X-Api-Key, as llama-server reads them.
  t.equal(
    (
      await app.inject({
        method: 'GET',
        url: '/v1/models',
        headers: { authorization: 'Bearer wrong', 'x-api-key': KEY },
      })
    ).statusCode,
    401,
  );
});
