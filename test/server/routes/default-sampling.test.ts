// The sampling defaults a server's flags set, over HTTP, for the requests that leave the field out. A value
// llama-server's flag takes is honoured as the request path honours the same value sent (--top-p 0 is greedy, as
// top_p 0 is); one the sampler cannot take is refused when the flags are read (test/entry/config.test.ts), so no
// flag starts a server whose every request fails. The harness is built from the flags as `npm start` builds it
// (src/entry/engine-options.ts); each flag is tried at both edges of its range, from the parameter table.
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import {
  GENERATION_PARAMETERS,
  type GenerationParameter,
  PARAMETER_NAMES,
} from '../../../src/server/generation/parameters.ts';
import { loadModel } from '../../helpers/models.ts';
import { errorOf, makeHarness, NO_EOS, USER_HI } from '../harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

// One slot with room for a short answer. One thread: the machine is shared.
const FLAGS = ['-np', '1', '-c', '256', '-t', '1'];

const chat = async (app: FastifyInstance, payload: object) => {
  const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload });
  return {
    status: res.statusCode,
    content: (res.json() as { choices?: { message: { content: string } }[] }).choices?.[0]?.message.content,
  };
};

t.test('--top-p 0: a request without top_p is greedy, as one with top_p 0; its own top_p still wins', async (t) => {
  // Sampled at a high temperature with a seed: repeatable, and not the greedy answer (checked below).
  const payload = {
    messages: USER_HI,
    temperature: 1.5,
    top_k: 100,
    min_p: 0.01,
    seed: 1234,
    max_tokens: 12,
    logit_bias: NO_EOS,
  };
  const plain = await makeHarness(t, model, { flags: FLAGS });
  const greedy = await chat(plain.app, { ...payload, temperature: 0 });
  const sampled = await chat(plain.app, { ...payload, top_p: 0.95 });
  t.equal(greedy.status, 200);
  t.not(sampled.content, greedy.content, 'this seed does not sample the greedy answer');
  t.same(await chat(plain.app, { ...payload, top_p: 0 }), greedy, "a request's top_p 0: greedy");

  const { app } = await makeHarness(t, model, { flags: [...FLAGS, '--top-p', '0'] });
  t.same(await chat(app, payload), greedy, 'the same request without top_p, under --top-p 0: greedy');
  t.same(await chat(app, { ...payload, top_p: 0.95 }), sampled, "a request's own top_p wins over the default");
});

/** The numeric parameters a flag sets. */
const numeric = PARAMETER_NAMES.flatMap((name): [string, GenerationParameter][] => {
  const p: GenerationParameter = GENERATION_PARAMETERS[name];
  return (p.kind === 'int' || p.kind === 'float') && p.flag !== undefined ? [[name, p]] : [];
});

t.test('every numeric flag at both edges of its range: a request that leaves the field out runs with it', async (t) => {
  for (const [name, p] of numeric) {
    const flag = p.flag?.names.at(-1) ?? '';
    for (const edge of [p.flag?.min, p.flag?.max]) {
      t.test(`${flag} ${edge ?? '(no bound)'}`, async (t) => {
        t.ok(edge !== undefined, `${flag}: bounded (else some default would be one the sampler refuses)`);
        if (edge === undefined) return;
        const { app } = await makeHarness(t, model, { flags: [...FLAGS, flag, String(edge)] });
        // The token limit is the one field these requests give, but where it is the one tried.
        const limit = name === 'nPredict' ? {} : { n_predict: 2 };
        const res = await app.inject({
          method: 'POST',
          url: '/completion',
          payload: { prompt: 'Hello', ...limit, logit_bias: NO_EOS },
        });
        t.equal(res.statusCode, 200, res.statusCode === 200 ? 'answered' : errorOf(res).message);
        const settings = (res.json() as { generation_settings?: Record<string, unknown> }).generation_settings;
        // top_p 0 runs greedy: reported as the request path reports a request's top_p 0.
        t.match(settings, name === 'topP' && edge === 0 ? { top_p: 1, temperature: 0 } : { [p.api[0]]: edge });
      });
    }
  }
});
