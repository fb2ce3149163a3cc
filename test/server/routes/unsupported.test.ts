// llama-server routes not served here: 501 with the reason in OpenAI's error shape, behind the API key like any
// other route; unknown paths stay 404.
import t from 'tap';
import { buildApp } from '../../../src/server/app.ts';
import { UNSUPPORTED } from '../../../src/server/routes/unsupported.ts';
import { stubDeps } from '../stub-deps.ts';

t.test('each answers 501 naming itself and why', async (t) => {
  const app = buildApp(stubDeps(), { ready: true, webui: false });
  t.teardown(() => app.close());
  for (const url of Object.keys(UNSUPPORTED)) {
    const res = await app.inject({ method: 'POST', url, payload: {} });
    t.equal(res.statusCode, 501, url);
    const error = (res.json() as { error: { type: string; message: string } }).error;
    t.equal(error.type, 'not_supported_error');
    t.match(error.message, `${url} is not supported by this server: `);
  }
  t.equal((await app.inject({ method: 'POST', url: '/infill-x', payload: {} })).statusCode, 404);
});

t.test('behind the API key', async (t) => {
  const app = buildApp(stubDeps({ config: { ctxPerSlot: 256, slots: 2, apiKeys: ['k'] } }), {
    ready: true,
    webui: false,
  });
  t.teardown(() => app.close());
  t.equal((await app.inject({ method: 'POST', url: '/infill', payload: {} })).statusCode, 401);
});
