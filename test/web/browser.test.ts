/// <reference lib="dom" />
// The web page in a real browser (Debian's chromium, headless) against a real server on the tiny model:
// streaming chat, stop freeing the slot as the live view shows it, a second browser's request appearing as
// a busy slot, the conversation surviving a reload, an API-key server asking for the key, a router-mode
// server's model picker and models table, and the page's rendering of reasoning, tool calls and hostile markdown. Screenshots of both views go to
// WEBUI_SCREENSHOTS (e.g. docs/) when it is set, else to a temporary folder.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import t, { type Test } from 'tap';
import { parseServeConfig } from '../../src/entry/config/index.ts';
import { createRouter, routerApp } from '../../src/entry/router-serve.ts';
import { chromiumMissing, launchChromium } from '../helpers/browser.ts';
import { modelPath } from '../helpers/models.ts';
import { type ServerProcess, startServer } from '../helpers/server-process.ts';

const missing = chromiumMissing();
if (missing !== null) {
  // Developers without chromium get a visible skip; CI installs it, so there it is a failure.
  if (process.env.CI) t.fail(missing);
  else t.plan(0, missing);
  process.exit();
}

const KEY = 'sk-browser-test';
const shots = process.env.WEBUI_SCREENSHOTS
  ? resolve(process.env.WEBUI_SCREENSHOTS)
  : mkdtempSync(join(tmpdir(), 'webui-shots-'));
mkdirSync(shots, { recursive: true });
if (!process.env.WEBUI_SCREENSHOTS) t.teardown(() => rmSync(shots, { recursive: true, force: true }));

// Gemma-3-1B's shapes (random weights) decode at about 10 tokens/s on one core here: slow enough that a
// stream is still running when the test presses stop, whatever the machine's load (the tiny model
// finishes 1500 tokens in about a second). One thread: the browser gets the other core (llama.cpp's
// threads spin, and starve when oversubscribed). The API-key server only needs to answer: tiny.
const model = await modelPath('gemma3-1b', 'Q4_K_M');
const tiny = await modelPath('tiny', 'Q4_K_M');
const server = await startServer(['-m', model, '-np', '2', '-c', '4096', '-t', '1']);
t.teardown(() => server.stop());
const browser: Browser = await launchChromium();
t.teardown(() => browser.close());

interface SlotState {
  id: number;
  state: string;
}

async function slots(s: ServerProcess, headers: Record<string, string> = {}): Promise<SlotState[]> {
  return (await (await fetch(`${s.url}/slots`, { headers })).json()) as SlotState[];
}

/** A console error a test expects, named: why it comes, its text and the URL it is logged for. */
interface ExpectedConsoleError {
  why: string;
  text: RegExp;
  url: RegExp;
}

/** A page that fails the test on any script error, and on any console error but the expected ones it names. */
async function newPage(
  t: Test,
  options: { width?: number; height?: number; expectedConsoleErrors?: readonly ExpectedConsoleError[] } = {},
): Promise<Page> {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1200, height: options.height ?? 800 },
  });
  t.teardown(() => context.close());
  const page = await context.newPage();
  page.on('pageerror', (err) => t.fail(`page error: ${err.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    const url = message.location().url;
    const expected = options.expectedConsoleErrors?.find((e) => e.text.test(text) && e.url.test(url));
    if (expected) t.comment(`expected console error (${expected.why}): ${text} at ${url}`);
    else t.fail(`console error: ${text}${url ? ` at ${url}` : ''}`);
  });
  return page;
}

async function setSettings(page: Page, s: { maxTokens?: number; seed?: number; system?: string }): Promise<void> {
  await page.getByTestId('settings-toggle').click();
  if (s.maxTokens !== undefined) await page.getByTestId('max-tokens').fill(String(s.maxTokens));
  if (s.seed !== undefined) await page.getByTestId('seed').fill(String(s.seed));
  if (s.system !== undefined) await page.getByTestId('system-prompt').fill(s.system);
  await page.getByTestId('settings-toggle').click();
}

async function sendMessage(page: Page, text: string): Promise<void> {
  await page.getByTestId('prompt').fill(text);
  await page.getByTestId('prompt').press('Enter');
}

const lastAnswer = (page: Page) => page.getByTestId('message-assistant').last();

/** Resolves once the last answer's text is longer than `n` characters while it is still streaming. */
async function answerGrowsPast(page: Page, n: number): Promise<number> {
  const handle = await page.waitForFunction(
    (n) => {
      const answers = document.querySelectorAll('[data-testid=message-assistant]');
      const last = answers[answers.length - 1];
      const length = last?.querySelector('[data-testid=content]')?.textContent?.length ?? 0;
      return last?.getAttribute('data-streaming') === 'true' && length > n ? length : false;
    },
    n,
    { timeout: 30_000 },
  );
  return (await handle.jsonValue()) as number;
}

/** The live view's slot states, once they equal `want` (a fresh frame: the view streams once a second). */
async function liveSlotsBecome(page: Page, want: (states: string[]) => boolean, label: string): Promise<string[]> {
  const states = async () =>
    page.$$eval('[data-testid=slot]', (rows) => rows.map((r) => r.getAttribute('data-state') ?? ''));
  const deadline = Date.now() + 15_000;
  for (;;) {
    const now = await states();
    if (now.length > 0 && want(now)) return now;
    if (Date.now() > deadline) throw new Error(`live view never showed ${label}; it shows ${now.join(', ')}`);
    await page.waitForTimeout(100);
  }
}

function isPng(path: string): boolean {
  const b = readFileSync(path);
  return b.length > 10_000 && b.subarray(1, 4).toString() === 'PNG';
}

t.test('chat streams; stop frees the slot; a second browser shows up busy; reload keeps the chat', async (t) => {
  const page = await newPage(t, { width: 1280, height: 860 });
  await page.goto(server.url);
  await page.getByTestId('model').filter({ hasText: 'gguf' }).waitFor();
  await setSettings(page, { maxTokens: 1000, seed: 7 });
  await sendMessage(page, 'Tell me a long story about the sea');
  t.equal(await page.getByTestId('message-user').textContent(), 'YouTell me a long story about the sea');

  const first = await answerGrowsPast(page, 0);
  const later = await answerGrowsPast(page, first + 20);
  t.ok(later > first, `text streams in (${first} then ${later} characters, still streaming)`);
  t.ok(
    (await slots(server)).some((s) => s.state === 'generating'),
    'a slot generates it',
  );

  // The live view while the answer streams (the chat keeps streaming behind it).
  await page.getByTestId('tab-live').click();
  await liveSlotsBecome(page, (s) => s.includes('generating'), 'a generating slot');
  t.match(
    await page.locator('[data-testid=slot][data-state=generating] [data-testid=slot-client]').textContent(),
    'ip:127.0.0.1',
  );

  await page.getByTestId('tab-chat').click();
  await page.getByTestId('stop').click();
  await page.locator('[data-testid=message-assistant][data-streaming=false]').waitFor();
  t.match(await lastAnswer(page).locator('.meta').textContent(), /stopped/);
  const stoppedText = (await lastAnswer(page).getByTestId('content').textContent()) ?? '';
  t.ok(stoppedText.length > 0, 'the text so far stays');

  await page.getByTestId('tab-live').click();
  await liveSlotsBecome(page, (s) => s.every((x) => x === 'idle'), 'every slot idle after stop');
  t.same(
    (await slots(server)).map((s) => s.state),
    ['idle', 'idle'],
    'GET /slots agrees',
  );
  t.equal(await page.getByTestId('tile-busy').locator('.value').textContent(), '0 / 2');

  // A second browser (its own storage) sends a request: this page's live view shows it as a busy slot.
  const other = await newPage(t);
  await other.goto(server.url);
  await setSettings(other, { maxTokens: 1000, seed: 11 });
  await sendMessage(other, 'Another long story, please');
  await answerGrowsPast(other, 0);
  const busy = await liveSlotsBecome(page, (s) => s.includes('generating'), "the other browser's request");
  t.equal(busy.filter((s) => s !== 'idle').length, 1, 'one busy slot');
  t.equal(await page.getByTestId('tile-busy').locator('.value').textContent(), '1 / 2');
  t.equal(await other.getByTestId('message-user').count(), 1, "the other browser does not see this one's chat");
  // A second of throughput in the charts, then the picture of the live view.
  await page.waitForFunction(
    () => Number(document.querySelector('[data-testid=tile-tps] .value')?.textContent ?? 0) > 0,
    undefined,
    { timeout: 15_000 },
  );
  await page.setViewportSize({ width: 1280, height: 1180 });
  await page.screenshot({ path: join(shots, 'webui-live.png') });
  t.ok(isPng(join(shots, 'webui-live.png')), 'live view screenshot');
  await other.getByTestId('stop').click();
  await liveSlotsBecome(page, (s) => s.every((x) => x === 'idle'), 'idle again after the other stop');

  // Reload: the conversation is still there, stopped answer included.
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.goto(`${server.url}/#chat`);
  await page.reload();
  await page.getByTestId('message-assistant').waitFor();
  t.equal(await page.getByTestId('message-user').textContent(), 'YouTell me a long story about the sea');
  t.equal(await lastAnswer(page).getByTestId('content').textContent(), stoppedText);
  t.match(await lastAnswer(page).locator('.meta').textContent(), /stopped/);

  // A short second turn for the picture of the chat.
  await setSettings(page, { maxTokens: 12 });
  await sendMessage(page, 'And a short one?');
  await page.locator('[data-testid=message-assistant][data-streaming=false]').nth(1).waitFor({ timeout: 30_000 });
  t.equal(await page.getByTestId('message-assistant').count(), 2);
  t.equal(await page.getByTestId('error').count(), 0, 'no error');
  await page.getByTestId('settings-toggle').click();
  await page.screenshot({ path: join(shots, 'webui-chat.png') });
  t.ok(isPng(join(shots, 'webui-chat.png')), 'chat screenshot');
});

t.test('a server with an API key: the page asks for it, then chat and live view work', async (t) => {
  const keyed = await startServer(['-m', tiny, '-np', '1', '-c', '1024', '-t', '1', '--api-key', KEY]);
  t.teardown(() => keyed.stop());
  const page = await newPage(t, {
    expectedConsoleErrors: [
      {
        why: 'the page asks for the model without a key, then with the wrong one: 401, and the dialog asks',
        text: /^Failed to load resource: the server responded with a status of 401 \(Unauthorized\)$/,
        url: /\/v1\/models$/,
      },
    ],
  });
  await page.goto(keyed.url);
  await page.getByTestId('key-dialog').waitFor();
  t.equal(await page.getByTestId('model').textContent(), '', 'nothing loaded without the key');
  await page.getByTestId('key-input').fill('sk-wrong');
  await page.getByTestId('key-save').click();
  await page.getByTestId('key-dialog').filter({ hasText: 'refused' }).waitFor();
  await page.getByTestId('key-input').fill(KEY);
  await page.getByTestId('key-save').click();
  await page.getByTestId('model').filter({ hasText: 'gguf' }).waitFor();
  t.equal(await page.getByTestId('key-dialog').count(), 0, 'the dialog is gone');

  await setSettings(page, { maxTokens: 8 });
  await sendMessage(page, 'Hi');
  await page.locator('[data-testid=message-assistant][data-streaming=false]').waitFor({ timeout: 30_000 });
  t.equal(await page.getByTestId('error').count(), 0, 'answered with the key');
  t.match(await lastAnswer(page).locator('.meta').textContent(), /8 tokens/);

  await page.getByTestId('tab-live').click();
  await page.locator('[data-testid=live][data-link=live]').waitFor();
  await liveSlotsBecome(page, (s) => s.length === 1, 'the one slot');
  t.equal((await fetch(`${keyed.url}/v1/stats`)).status, 401, 'the stats need the key the page sends');
});

t.test('router mode: the picker lists the models with their status, the chat asks the picked one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'webui-models-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(tiny, join(dir, 'tiny.gguf'));
  symlinkSync(await modelPath('tiny-gemma3'), join(dir, 'tiny-gemma3.gguf'));
  // In this process, as test/router/router-server.test.ts serves it.
  const argv = ['--models-dir', dir, '-np', '2', '-c', '1024', '-t', '1'];
  const config = parseServeConfig(argv, {});
  const parts = createRouter(config, argv, {}, { info: () => {}, error: () => {} });
  await parts.router.start();
  const app = routerApp(config, { apiKeys: [], chatTemplate: undefined, grammar: undefined }, parts);
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    await app.close();
    await parts.router.close(0);
  });
  const address = app.server.address();
  const routed = { url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}` };
  const page = await newPage(t, { width: 1280, height: 900 });
  const asked: string[] = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/v1/chat/completions')) asked.push((r.postDataJSON() as { model: string }).model);
  });
  await page.goto(routed.url);
  const picker = page.getByTestId('model-picker');
  await picker.waitFor();
  t.same(await picker.locator('option').allTextContents(), ['tiny (unloaded)', 'tiny-gemma3 (unloaded)']);
  t.equal(await page.getByTestId('model').count(), 0, 'no plain label with several models');
  t.equal(await picker.inputValue(), 'tiny', 'the first model until one is picked');

  await picker.selectOption('tiny-gemma3');
  await setSettings(page, { maxTokens: 8 });
  await sendMessage(page, 'Hi');
  await page.locator('[data-testid=message-assistant][data-streaming=false]').waitFor({ timeout: 60_000 });
  t.equal(await page.getByTestId('error').count(), 0, 'answered');
  t.same(asked, ['tiny-gemma3'], 'the chat asked the picked model');
  // Focusing the picker asks the listing again: the model it loaded shows as loaded.
  await picker.focus();
  await picker.locator('option', { hasText: 'tiny-gemma3 (loaded)' }).waitFor({ state: 'attached' });
  t.same(await picker.locator('option').allTextContents(), ['tiny (unloaded)', 'tiny-gemma3 (loaded)']);

  // The live view: a row per model with its status, and the loaded model's slots.
  await page.getByTestId('tab-live').click();
  const row = (id: string) => page.locator(`[data-testid=model-row][data-model="${id}"]`);
  await row('tiny-gemma3').and(page.locator('[data-status=loaded]')).waitFor();
  t.equal(await row('tiny').getAttribute('data-status'), 'unloaded');
  t.equal(await row('tiny-gemma3').getByTestId('model-busy').textContent(), '0 / 2');
  t.equal(await row('tiny').getByTestId('model-busy').textContent(), '–', 'no slots while unloaded');
  const slotModels = await page.$$eval('[data-testid=slot]', (rows) => rows.map((r) => r.getAttribute('data-model')));
  t.same(slotModels, ['tiny-gemma3', 'tiny-gemma3'], "the loaded model's two slots");
  t.equal(await page.getByTestId('tile-busy').locator('.value').textContent(), '0 / 2');
  await page.screenshot({ path: join(shots, 'webui-router-live.png') });
  t.ok(isPng(join(shots, 'webui-router-live.png')), 'router live view screenshot');

  // Picking the other model sends it; the pick survives a reload.
  await page.getByTestId('tab-chat').click();
  await picker.selectOption('tiny');
  await sendMessage(page, 'Hello again');
  await page.locator('[data-testid=message-assistant][data-streaming=false]').nth(1).waitFor({ timeout: 60_000 });
  t.same(asked, ['tiny-gemma3', 'tiny']);
  await page.reload();
  await page.getByTestId('model-picker').waitFor();
  t.equal(await page.getByTestId('model-picker').inputValue(), 'tiny', 'the pick is kept');
});

/** An SSE body in OpenAI's chat streaming format. */
function sse(chunks: object[]): string {
  return `${chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('')}data: [DONE]\n\n`;
}
const delta = (d: object, finish: string | null = null) => ({
  id: 'chatcmpl-x',
  object: 'chat.completion.chunk',
  choices: [{ index: 0, delta: d, finish_reason: finish }],
});

t.test('rendering: markdown and code, no script from model output, reasoning folded, tool calls', async (t) => {
  const page = await newPage(t, {
    expectedConsoleErrors: [
      {
        // Chromium reports the page's CSP refusing an inline handler even in DOMPurify's inert DOMParser document,
        // where it would not run anyway; the sanitised output has no handler (checked below).
        why: 'the hostile <img onerror> parsed by the sanitiser, refused by the CSP',
        text: /^Executing inline event handler violates the following Content Security Policy directive 'script-src 'self''/,
        url: /\/assets\/app-[^/]*\.js$/,
      },
      {
        why: 'the hostile <img src=x> stays an image, without its handler; the server has no /x',
        text: /^Failed to load resource: the server responded with a status of 404 \(Not Found\)$/,
        url: /^http:\/\/127\.0\.0\.1:\d+\/x$/,
      },
    ],
  });
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
  const bodies: Array<{ messages: Array<{ role: string; content: string }>; [k: string]: unknown }> = [];
  const answers = [
    sse([
      delta({ role: 'assistant', content: '' }),
      delta({ reasoning_content: 'The user wants ' }),
      delta({ reasoning_content: 'code.' }),
      delta({ content: 'Here:\n\n```js\nconsole.log(1)\n```\n\n' }),
      delta({ content: '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>' }),
      delta({ content: '[click](javascript:window.__pwned=3) **bold**' }),
      delta({
        tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }],
      }),
      delta({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
      delta({ tool_calls: [{ index: 0, function: { arguments: ' "Paris"}' } }] }),
      delta({}, 'tool_calls'),
      {
        id: 'chatcmpl-x',
        object: 'chat.completion.chunk',
        choices: [],
        usage: { prompt_tokens: 5, completion_tokens: 9 },
      },
    ]),
    sse([delta({ content: 'second answer' }), delta({}, 'stop')]),
    sse([delta({ content: 'regenerated answer' }), delta({}, 'length')]),
  ];
  await page.route('**/v1/chat/completions', async (route) => {
    bodies.push(route.request().postDataJSON());
    await route.fulfill({ status: 200, contentType: 'text/event-stream', body: answers[bodies.length - 1] ?? '' });
  });
  await page.goto(server.url);
  await setSettings(page, { system: 'Be brief.', maxTokens: 77, seed: 5 });
  await sendMessage(page, 'Show me code');
  const answer = lastAnswer(page);
  await page.locator('[data-testid=message-assistant][data-streaming=false]').waitFor();

  t.equal(await answer.locator('[data-testid=content] pre code').textContent(), 'console.log(1)\n', 'a code block');
  t.equal(await answer.locator('[data-testid=content] strong').textContent(), 'bold');
  t.equal(await page.evaluate(() => (window as { __pwned?: number }).__pwned), undefined, 'no script ran');
  t.equal(await answer.locator('[data-testid=content] script, [data-testid=content] [onerror]').count(), 0);
  const href = await answer.locator('[data-testid=content] a').getAttribute('href');
  t.notMatch(href ?? '', /^javascript:/i, 'no javascript: link');
  const reasoning = answer.getByTestId('reasoning');
  t.equal(await reasoning.evaluate((d) => (d as HTMLDetailsElement).open), false, 'reasoning is folded');
  t.match(await reasoning.textContent(), /The user wants code\./);
  const call = answer.getByTestId('tool-call');
  t.match(await call.textContent(), /get_weather/);
  t.match(await call.locator('pre').textContent(), /"city": "Paris"/, 'arguments joined from their pieces');
  t.match(await answer.locator('.meta').textContent(), /tool_calls.*9 tokens/);

  await answer.getByTestId('copy').click();
  t.match(await page.evaluate(() => navigator.clipboard.readText()), /^Here:\n\n```js/, 'copy gives the markdown');

  // Multi-turn: the next request carries the system prompt, the settings and the whole conversation.
  await sendMessage(page, 'And now?');
  await page.locator('[data-testid=message-assistant][data-streaming=false]').nth(1).waitFor();
  t.match(bodies[1], { stream: true, max_tokens: 77, seed: 5, stream_options: { include_usage: true } });
  t.same(
    bodies[1]?.messages.map((m) => m.role),
    ['system', 'user', 'assistant', 'user'],
  );
  t.equal(bodies[1]?.messages[0]?.content, 'Be brief.');
  t.match(bodies[1]?.messages[2]?.content, /^Here:/);

  // Regenerate: the last answer is asked for again and replaced.
  await page.getByTestId('regenerate').click();
  await page.getByTestId('message-assistant').filter({ hasText: 'regenerated answer' }).waitFor();
  t.same(
    bodies[2]?.messages.map((m) => m.role),
    ['system', 'user', 'assistant', 'user'],
    'the same turns again',
  );
  t.equal(await page.getByTestId('message-assistant').count(), 2);
  t.equal(await page.getByTestId('message-assistant').filter({ hasText: 'second answer' }).count(), 0);
});
