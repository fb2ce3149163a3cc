// The chat layer as npm start's flags build it (src/entry/engine-options.ts chatOptionsOf): earlier turns' reasoning
// is preserved by default, as llama-server does (its preserve_reasoning kwarg, which llama.cpp maps to the templates'
// drop_thinking, clear_thinking...). The expected prompts are llama-server's own renderings (build-tools/bin/
// llama-server --jinja, /apply-template) of the same conversation; scripts/template-parity.ts compares the corpus.
import t from 'tap';
import { Model } from '../../src/engine/index.ts';
import { ensureModel } from '../../src/tools/model-cache.ts';
import { templateText } from '../helpers/models.ts';
import { makeHarness } from '../server/harness.ts';

const conversation = {
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello there.' },
    { role: 'user', content: 'How are you?' },
  ],
};
const PRESERVED =
  'Be brief.<｜User｜>Hi<｜Assistant｜><think></think>Hello there.<｜end▁of▁sentence｜><｜User｜>How are you?<｜Assistant｜><think>';
const DROPPED =
  'Be brief.<｜User｜>Hi<｜Assistant｜></think>Hello there.<｜end▁of▁sentence｜><｜User｜>How are you?<｜Assistant｜><think>';

for (const name of ['deepseek-ai-DeepSeek-V4', 'deepseek-ai-DeepSeek-V4-Flash-0731']) {
  t.test(`${name}: an earlier turn as llama-server renders it, with each flag`, async (t) => {
    const chatTemplate = await templateText(name);
    const model = await Model.load(await ensureModel({ preset: 'tiny', quant: 'F16', seed: 1, chatTemplate }));
    t.teardown(() => model.dispose());
    const cases: Array<[string[], string, string]> = [
      [[], PRESERVED, 'default: preserved, as llama-server'],
      [['--no-reasoning-preserve'], DROPPED, '--no-reasoning-preserve drops it'],
      [['--chat-template-kwargs', '{"preserve_reasoning":false}'], DROPPED, 'a kwarg given wins over the default'],
      [
        ['--no-reasoning-preserve', '--chat-template-kwargs', '{"preserve_reasoning":true}'],
        PRESERVED,
        'and over the flag',
      ],
    ];
    for (const [flags, expected, what] of cases) {
      const h = await makeHarness(t, model, { flags: ['-np', '1', '-c', '256', '-t', '1', ...flags] });
      const res = await h.app.inject({ method: 'POST', url: '/apply-template', payload: conversation });
      t.equal(res.json().prompt, expected, what);
    }
  });
}
