import t from 'tap';
import { ContextExceededError, NativeError, RejectedError } from '../../src/errors.ts';
import { ApiError, contextExceeded, paramName, toApiError, validationError } from '../../src/server/errors.ts';

t.test('queue full: 429 with Retry-After, in a rate-limit error', async (t) => {
  const e = toApiError(new RejectedError('QUEUE_FULL', 'the queue is full', { retryAfterSeconds: 2.2 }));
  t.equal(e.statusCode, 429);
  t.equal(e.type, 'rate_limit_exceeded');
  t.equal(e.code, 'queue_full');
  t.same(e.headers, { 'retry-after': '3' }, 'whole seconds, rounded up');
  t.equal(
    toApiError(new RejectedError('QUEUE_FULL', 'x', { retryAfterSeconds: 0 })).headers['retry-after'],
    '1',
    'at least 1',
  );
});

t.test('shutting down: 503', async (t) => {
  const e = toApiError(new RejectedError('SHUTTING_DOWN', 'bye'));
  t.equal(e.statusCode, 503);
  t.equal(e.type, 'unavailable_error');
});

t.test('context exceeded: llama-server fields', async (t) => {
  t.same(contextExceeded(300, 256).body().error, {
    message: contextExceeded(300, 256).message,
    type: 'exceed_context_size_error',
    param: null,
    code: 'context_length_exceeded',
    n_prompt_tokens: 300,
    n_ctx: 256,
  });
  t.equal(toApiError(new ContextExceededError('CONTEXT_EXCEEDED', 'too long')).statusCode, 400);
});

t.test('anything else is a 500 that does not leak its message', async (t) => {
  for (const err of [
    new Error('/secret/path failed at 0xdeadbeef'),
    new NativeError('DECODE_FAILED', 'llama_decode -3 at /secret'),
    'a string',
    null,
    { statusCode: 500, message: 'internal' },
  ]) {
    const e = toApiError(err);
    t.equal(e.statusCode, 500);
    t.equal(e.type, 'server_error');
    t.notMatch(JSON.stringify(e.body()), /secret|deadbeef|internal"/);
  }
});

t.test('Fastify body errors', async (t) => {
  t.equal(
    toApiError({ code: 'FST_ERR_CTP_INVALID_JSON_BODY', statusCode: 400, message: 'Unexpected token' }).statusCode,
    400,
  );
  t.equal(
    toApiError({ code: 'FST_ERR_CTP_EMPTY_JSON_BODY', statusCode: 400, message: 'x' }).type,
    'invalid_request_error',
  );
  t.equal(toApiError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413, message: 'x' }).statusCode, 413);
  t.equal(toApiError({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415, message: 'x' }).statusCode, 415);
  t.equal(toApiError(new SyntaxError('Unexpected end of JSON input')).statusCode, 400);
});

t.test('an ApiError passes through', async (t) => {
  const e = new ApiError(418, 'teapot', 'short and stout', { param: 'spout', code: 'tea' });
  t.equal(toApiError(e), e);
  t.same(e.body(), { error: { message: 'short and stout', type: 'teapot', param: 'spout', code: 'tea' } });
});

t.test('parameter names in OpenAI style', async (t) => {
  t.equal(paramName(''), '');
  t.equal(paramName('/temperature'), 'temperature');
  t.equal(paramName('/messages/0/role'), 'messages[0].role');
  t.equal(paramName('/messages/2/content/1/type'), 'messages[2].content[1].type');
  t.equal(paramName('/logit_bias/a~1b'), 'logit_bias.a/b');
});

t.test('validation messages pick the useful issue out of a union', async (t) => {
  const range = validationError([
    { keyword: 'maximum', instancePath: '/temperature', params: { limit: 2 }, message: 'must be <= 2' },
    { keyword: 'type', instancePath: '/temperature', params: { type: 'null' }, message: 'must be null' },
    { keyword: 'anyOf', instancePath: '/temperature', params: {}, message: 'must match a schema in anyOf' },
  ]);
  t.equal(range.param, 'temperature');
  t.equal(range.message, "Invalid value for 'temperature': must be <= 2.");
  const types = validationError([
    { keyword: 'type', instancePath: '/stop', params: { type: 'string' } },
    { keyword: 'type', instancePath: '/stop', params: { type: 'array' } },
    { keyword: 'type', instancePath: '/stop', params: { type: 'null' } },
    { keyword: 'anyOf', instancePath: '/stop', params: {} },
  ]);
  t.equal(types.message, "Invalid value for 'stop': must be string or array or null.");
  const missing = validationError([
    { keyword: 'required', instancePath: '/messages/0', params: { requiredProperties: ['content'] } },
  ]);
  t.equal(missing.param, 'messages[0].content');
  t.equal(missing.message, "Missing required parameter: 'messages[0].content'.");
  const whole = validationError([{ keyword: 'type', instancePath: '', params: { type: 'object' } }]);
  t.equal(whole.param, null);
  t.match(whole.message, /must be object/);
});
