// The returning-conversations workload against any OpenAI-compatible server (this one or llama-server), over HTTP
// only. A burst: `concurrency` clients take turns of `conversations` conversations that share one system prompt,
// each turn sent when the conversation's previous answer came back (so answers feed the next prompt), some abandoned
// mid-stream and sent again. Then the replay: every answered turn again, one at a time, with cache_prompt false —
// what the model gives that exact conversation alone. The report says where an answer differs (src/bench/greedy.ts:
// exactly, up to a numerical tie), and compares the cached prompt tokens the answers reported with the server's
// metrics when it has them.
import { chatPositions, compareGreedy, type Position } from '../greedy.ts';
import { mixSeed, promptText, systemText } from '../loadgen/plan.ts';
import { authHeaders, describeNetworkError, httpErrorMessage } from '../loadgen/request.ts';
import { parseChatEvent, SseDecoder } from '../loadgen/sse.ts';
import { parseExposition } from '../soak/probe.ts';
import type { ConversationsOptions } from './options.ts';

type Workload = Omit<ConversationsOptions, 'jsonFile'>;

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface TurnRecord {
  conversation: number;
  turn: number;
  /** The body sent; the replay sends it again with cache_prompt false. */
  body: Record<string, unknown>;
  positions: Position[];
  content: string;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
}

export interface Mismatch {
  conversation: number;
  turn: number;
  problem: string;
}

/** Series whose change over the burst the report shows, where the server exports them. */
export const WATCHED_METRICS = [
  'llamacpp:prompt_tokens_total',
  'llamacpp:prompt_tokens_cached_total',
  'llama_slots_prompt_cache_hits_total',
  'llama_slots_prompt_cache_restored_tokens_total',
  'llama_slots_preemptions_total',
] as const;

export interface ConversationsReport {
  options: Workload;
  burst: {
    ms: number;
    /** Requests sent, answered, abandoned on purpose, failed (with their errors). */
    sent: number;
    answered: number;
    cancelled: number;
    failed: string[];
    promptTokens: number;
    cachedTokens: number;
    completionTokens: number;
  };
  /** How the watched series changed over the burst; null without /metrics. */
  metrics: Partial<Record<(typeof WATCHED_METRICS)[number], number>> | null;
  replay: { compared: number; equalTokens: number; ties: number; mismatches: Mismatch[]; failed: string[] };
  turns: TurnRecord[];
}

export function conversationText(w: Pick<Workload, 'seed' | 'userTokens'>, conversation: number, turn: number) {
  return `Conversation ${conversation}, question ${turn + 1}: ${promptText(mixSeed(w.seed, 11, conversation), turn, w.userTokens)}`;
}

function requestBody(w: Workload, messages: readonly Message[]): Record<string, unknown> {
  return {
    ...(w.model === null ? {} : { model: w.model }),
    messages,
    max_tokens: w.maxTokens,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  };
}

async function post(w: Workload, body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${w.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...authHeaders(w.apiKey) },
    body: JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(w.timeoutMs),
  });
}

interface ChatAnswer {
  positions: Position[];
  content: string;
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } };
}

async function answer(w: Workload, body: Record<string, unknown>): Promise<ChatAnswer | string> {
  try {
    const res = await post(w, body);
    const text = await res.text();
    if (res.status !== 200) return httpErrorMessage(res.status, text);
    const json = JSON.parse(text) as Parameters<typeof chatPositions>[0] & {
      choices: Array<{ message?: { content?: string | null } }>;
      usage: ChatAnswer['usage'];
    };
    return { positions: chatPositions(json), content: json.choices[0]?.message?.content ?? '', usage: json.usage };
  } catch (err) {
    return describeNetworkError(err);
  }
}

/** Streams the request and goes away after `chunks` content chunks, as a client that closed its tab. */
async function abandon(w: Workload, body: Record<string, unknown>, chunks: number): Promise<string | null> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), w.timeoutMs);
  try {
    const res = await post(w, { ...body, stream: true }, controller.signal);
    if (res.status !== 200 || res.body === null) return httpErrorMessage(res.status, await res.text());
    const reader = res.body.getReader();
    const sse = new SseDecoder();
    const utf8 = new TextDecoder();
    let seen = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null; // it ended before we left: fine too
      for (const event of sse.push(utf8.decode(value, { stream: true }))) {
        const item = parseChatEvent(event);
        if (item.kind === 'chunk' && item.content !== '') seen++;
        if (seen >= chunks) {
          controller.abort();
          return null;
        }
      }
    }
  } catch (err) {
    return controller.signal.aborted ? null : describeNetworkError(err);
  } finally {
    clearTimeout(timer);
  }
}

async function scrape(w: Workload): Promise<Map<string, number> | null> {
  try {
    const res = await fetch(`${w.url}/metrics`, {
      headers: authHeaders(w.apiKey),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return res.status === 200 ? parseExposition(text) : null;
  } catch {
    return null;
  }
}

export async function runConversations(
  w: Workload,
  log: (line: string) => void = () => {},
): Promise<ConversationsReport> {
  const system = systemText(w.seed, w.systemTokens);
  const histories: Message[][] = Array.from({ length: w.conversations }, () =>
    w.systemTokens > 0 ? [{ role: 'system', content: system }] : [],
  );
  const nextTurn = new Array<number>(w.conversations).fill(0);
  // Conversations ready for their next turn, in the order they became ready; all of them at first, so the later
  // ones arrive while the first are running.
  const ready: number[] = Array.from({ length: w.conversations }, (_, c) => c);
  const turns: TurnRecord[] = [];
  const failed: string[] = [];
  let sent = 0;
  let cancelled = 0;
  let inFlight = 0;
  let wake: () => void = () => {};
  let changed = new Promise<void>((r) => {
    wake = r;
  });
  const signal = () => {
    wake();
    changed = new Promise<void>((r) => {
      wake = r;
    });
  };
  const before = await scrape(w);
  const t0 = performance.now();

  const client = async (): Promise<void> => {
    for (;;) {
      const conversation = ready.shift();
      if (conversation === undefined) {
        if (inFlight === 0) return;
        await changed;
        continue;
      }
      inFlight++;
      const turn = nextTurn[conversation] ?? 0;
      const history = histories[conversation] ?? [];
      const messages: Message[] = [...history, { role: 'user', content: conversationText(w, conversation, turn) }];
      const body = requestBody(w, messages);
      const index = sent++;
      if (w.cancelEvery > 0 && index % w.cancelEvery === w.cancelEvery - 1) {
        const error = await abandon(w, body, w.cancelAfter);
        if (error !== null) failed.push(`conversation ${conversation} turn ${turn} (abandoned): ${error}`);
        else cancelled++;
        ready.push(conversation); // the client comes back with the same turn
      } else {
        const got = await answer(w, body);
        if (typeof got === 'string') {
          failed.push(`conversation ${conversation} turn ${turn}: ${got}`);
        } else {
          turns.push({
            conversation,
            turn,
            body,
            positions: got.positions,
            content: got.content,
            promptTokens: got.usage.prompt_tokens,
            cachedTokens: got.usage.prompt_tokens_details?.cached_tokens ?? 0,
            completionTokens: got.usage.completion_tokens,
          });
          history.push(messages.at(-1) as Message, { role: 'assistant', content: got.content });
          nextTurn[conversation] = turn + 1;
          if (turn + 1 < w.turns) ready.push(conversation);
        }
      }
      inFlight--;
      signal();
    }
  };
  await Promise.all(Array.from({ length: w.concurrency }, client));
  const burstMs = performance.now() - t0;
  const after = await scrape(w);
  log(
    `burst: ${turns.length} answered, ${cancelled} abandoned, ${failed.length} failed in ${(burstMs / 1000).toFixed(1)} s`,
  );

  let metrics: ConversationsReport['metrics'] = null;
  if (before !== null && after !== null) {
    metrics = {};
    for (const name of WATCHED_METRICS) {
      const a = after.get(name);
      const b = before.get(name);
      if (a !== undefined && b !== undefined) metrics[name] = a - b;
    }
  }

  // The replay: each answered turn alone, nothing reused.
  const mismatches: Mismatch[] = [];
  const replayFailed: string[] = [];
  let equalTokens = 0;
  let ties = 0;
  for (const [k, turn] of turns.entries()) {
    const alone = await answer(w, { ...turn.body, cache_prompt: false });
    if (typeof alone === 'string') {
      replayFailed.push(`conversation ${turn.conversation} turn ${turn.turn}: ${alone}`);
      continue;
    }
    const c = compareGreedy(turn.positions, alone.positions);
    equalTokens += c.equal;
    if (c.tieAt !== null) ties++;
    if (c.problem !== null) mismatches.push({ conversation: turn.conversation, turn: turn.turn, problem: c.problem });
    if ((k + 1) % 20 === 0) log(`replay: ${k + 1}/${turns.length}`);
  }
  const sum = (f: (t: TurnRecord) => number) => turns.reduce((n, t) => n + f(t), 0);
  return {
    options: w,
    burst: {
      ms: burstMs,
      sent,
      answered: turns.length,
      cancelled,
      failed,
      promptTokens: sum((t) => t.promptTokens),
      cachedTokens: sum((t) => t.cachedTokens),
      completionTokens: sum((t) => t.completionTokens),
    },
    metrics,
    replay: { compared: turns.length - replayFailed.length, equalTokens, ties, mismatches, failed: replayFailed },
    turns,
  };
}

/** Problems that fail the run: mismatched answers, failed requests, cached tokens that disagree with the metrics. */
export function verdictOf(r: ConversationsReport): string[] {
  const problems: string[] = [];
  for (const m of r.replay.mismatches)
    problems.push(`conversation ${m.conversation} turn ${m.turn} is not its solo run: ${m.problem}`);
  problems.push(...r.burst.failed.map((f) => `failed: ${f}`), ...r.replay.failed.map((f) => `replay failed: ${f}`));
  const cached = r.metrics?.['llamacpp:prompt_tokens_cached_total'];
  if (cached !== undefined && cached !== r.burst.cachedTokens)
    problems.push(
      `the answers reported ${r.burst.cachedTokens} cached prompt tokens, llamacpp:prompt_tokens_cached_total grew by ${cached}`,
    );
  // Restores for abandoned requests are not in the answers' counts: comparable only without them.
  const restored = r.metrics?.llama_slots_prompt_cache_restored_tokens_total;
  if (restored !== undefined && r.burst.cancelled === 0 && restored > r.burst.cachedTokens)
    problems.push(`${restored} tokens restored from RAM, more than the ${r.burst.cachedTokens} the answers reused`);
  return problems;
}

export function formatReport(r: ConversationsReport): string {
  const b = r.burst;
  const seconds = b.ms / 1000;
  const lines = [
    `=== conversations: ${r.options.conversations} x ${r.options.turns} turns, ${r.options.concurrency} clients, system prompt ~${r.options.systemTokens} tokens ===`,
    `burst: ${b.sent} sent, ${b.answered} answered, ${b.cancelled} abandoned mid-answer, ${b.failed.length} failed in ${seconds.toFixed(1)} s`,
    `tokens: prompt ${b.promptTokens} (cached ${b.cachedTokens}, ${b.promptTokens > 0 ? ((100 * b.cachedTokens) / b.promptTokens).toFixed(1) : '0'}%), generated ${b.completionTokens} (${(b.completionTokens / seconds).toFixed(2)}/s)`,
  ];
  if (r.metrics !== null)
    lines.push(
      `metrics over the burst: ${Object.entries(r.metrics)
        .map(([k, v]) => `${k} +${v}`)
        .join(', ')}`,
    );
  else lines.push('metrics: /metrics not available (start the server with --metrics)');
  lines.push(
    `replay alone (cache_prompt false): ${r.replay.compared} compared, ${r.replay.equalTokens} tokens equal, ${r.replay.ties} parted at a numerical tie, ${r.replay.mismatches.length} mismatches`,
  );
  const problems = verdictOf(r);
  lines.push(problems.length === 0 ? 'verdict: every answer was its solo run' : `verdict: ${problems.length} problems`);
  for (const p of problems.slice(0, 20)) lines.push(`  ${p}`);
  if (problems.length > 20) lines.push(`  ... and ${problems.length - 20} more`);
  return `${lines.join('\n')}\n`;
}
