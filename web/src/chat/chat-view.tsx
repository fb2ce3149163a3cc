// The chat: a multi-turn conversation streamed from POST /v1/chat/completions, with a stop button (aborting
// the fetch closes the connection; the server cancels the request and frees its slot), settings, copy and
// regenerate. The conversation is saved in localStorage as it grows.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, apiFetch, readEvents } from '../api.ts';
import { fmtMs, fmtRate } from '../format.ts';
import {
  applyChunk,
  type Conversation,
  loadConversation,
  type Message,
  messageId,
  requestBody,
  type Settings,
  type StreamChunk,
  saveConversation,
} from './conversation.ts';
import { renderMarkdown } from './markdown.ts';

interface ChatViewProps {
  model: string | null;
  onUnauthorized(): void;
}

export function ChatView({ model, onUnauthorized }: ChatViewProps) {
  const [conv, setConv] = useState<Conversation>(loadConversation);
  const [draft, setDraft] = useState('');
  const [showSettings, setShowSettings] = useState(false);
  const [streaming, setStreaming] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const latest = useRef(conv);
  latest.current = conv;
  const list = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  // Saved at once between answers, and once a second while one streams (each token would be too often).
  useEffect(() => {
    if (!streaming) saveConversation(conv);
  }, [conv, streaming]);
  useEffect(() => {
    if (!streaming) return;
    const timer = setInterval(() => saveConversation(latest.current), 1000);
    return () => clearInterval(timer);
  }, [streaming]);
  useEffect(() => () => abort.current?.abort(), []);

  // Follow the answer as it grows, unless the user scrolled up to read.
  useEffect(() => {
    const el = list.current;
    if (el !== null && stick.current) el.scrollTop = el.scrollHeight;
  }, [conv.messages]);
  const onScroll = (): void => {
    const el = list.current;
    if (el !== null) stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  };

  const update = (id: string, change: (m: Message) => Message): void =>
    setConv((c) => ({ ...c, messages: c.messages.map((m) => (m.id === id ? change(m) : m)) }));

  async function answer(history: Message[]): Promise<void> {
    const reply: Message = { id: messageId(), role: 'assistant', content: '', streaming: true };
    setConv((c) => ({ ...c, messages: [...history, reply] }));
    stick.current = true;
    const ac = new AbortController();
    abort.current = ac;
    setStreaming(true);
    const sent = performance.now();
    try {
      const body = requestBody(model ?? 'default', latest.current.settings, history);
      const res = await apiFetch('/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: ac.signal,
      });
      // Chunks are applied a few times a frame's worth at once: re-rendering markdown for every token would
      // take the CPU the server needs when both share a machine.
      let pending: StreamChunk[] = [];
      let firstAt: number | undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const flush = (): void => {
        clearTimeout(timer);
        timer = undefined;
        const chunks = pending;
        pending = [];
        if (chunks.length > 0)
          update(reply.id, (m) => {
            const next = chunks.reduce(applyChunk, m);
            if (firstAt !== undefined) next.ttftMs ??= firstAt - sent;
            return next;
          });
      };
      try {
        await readEvents(res, (data) => {
          if (data === '[DONE]') return;
          const chunk = JSON.parse(data) as StreamChunk;
          const delta = chunk.choices?.[0]?.delta;
          if (firstAt === undefined && (delta?.content || delta?.reasoning_content || delta?.tool_calls))
            firstAt = performance.now();
          pending.push(chunk);
          timer ??= setTimeout(flush, 50);
        });
      } finally {
        flush();
      }
      update(reply.id, (m) => ({ ...m, streaming: false, totalMs: performance.now() - sent }));
    } catch (err) {
      if (ac.signal.aborted) {
        update(reply.id, (m) => ({ ...m, streaming: false, stopped: true, totalMs: performance.now() - sent }));
      } else {
        if (err instanceof ApiError && err.unauthorized) onUnauthorized();
        const error = err instanceof Error ? err.message : String(err);
        update(reply.id, (m) => ({ ...m, streaming: false, error }));
      }
    } finally {
      if (abort.current === ac) abort.current = null;
      setStreaming(false);
    }
  }

  const send = (): void => {
    const text = draft.trim();
    if (text === '' || streaming) return;
    setDraft('');
    void answer([...latest.current.messages, { id: messageId(), role: 'user', content: text }]);
  };

  const regenerate = (): void => {
    if (streaming) return;
    const messages = latest.current.messages;
    const last = messages.findLastIndex((m) => m.role === 'user');
    if (last >= 0) void answer(messages.slice(0, last + 1));
  };

  const setSettings = (s: Partial<Settings>): void => setConv((c) => ({ ...c, settings: { ...c.settings, ...s } }));
  const lastAssistant = conv.messages.findLastIndex((m) => m.role === 'assistant');

  return (
    <section class="chat">
      <div class="toolbar">
        <button
          type="button"
          data-testid="new-chat"
          disabled={streaming}
          onClick={() => setConv((c) => ({ ...c, messages: [] }))}
        >
          New chat
        </button>
        <button
          type="button"
          data-testid="settings-toggle"
          aria-expanded={showSettings}
          onClick={() => setShowSettings(!showSettings)}
        >
          Settings
        </button>
        <span class="muted">
          temperature {conv.settings.temperature} · max tokens {conv.settings.maxTokens ?? 'none'} · seed{' '}
          {conv.settings.seed ?? 'random'}
        </span>
      </div>
      {showSettings && <SettingsPanel settings={conv.settings} onChange={setSettings} />}
      <div class="messages" ref={list} onScroll={onScroll} data-testid="messages">
        {conv.messages.length === 0 && (
          <p class="empty">
            Send a message to start. The conversation stays in this browser until you start a new one.
          </p>
        )}
        {conv.messages.map((m, i) => (
          <MessageView key={m.id} message={m} onRegenerate={i === lastAssistant && !streaming ? regenerate : null} />
        ))}
      </div>
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <textarea
          data-testid="prompt"
          placeholder="Message (Enter sends, Shift+Enter for a new line)"
          value={draft}
          rows={3}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              send();
            }
          }}
        />
        {streaming ? (
          <button type="button" class="stop" data-testid="stop" onClick={() => abort.current?.abort()}>
            Stop
          </button>
        ) : (
          <button type="submit" class="primary" data-testid="send" disabled={draft.trim() === ''}>
            Send
          </button>
        )}
      </form>
    </section>
  );
}

function SettingsPanel({ settings, onChange }: { settings: Settings; onChange(s: Partial<Settings>): void }) {
  const optionalInt = (value: string): number | null => {
    const n = Number.parseInt(value, 10);
    return value.trim() === '' || !Number.isFinite(n) ? null : n;
  };
  return (
    <div class="settings" data-testid="settings">
      <label class="wide">
        System prompt
        <textarea
          data-testid="system-prompt"
          rows={2}
          value={settings.system}
          onInput={(e) => onChange({ system: e.currentTarget.value })}
        />
      </label>
      <label>
        Temperature
        <input
          type="number"
          data-testid="temperature"
          min={0}
          max={2}
          step={0.1}
          value={settings.temperature}
          onInput={(e) => {
            const v = Number.parseFloat(e.currentTarget.value);
            if (Number.isFinite(v) && v >= 0) onChange({ temperature: v });
          }}
        />
      </label>
      <label>
        Max tokens
        <input
          type="number"
          data-testid="max-tokens"
          min={1}
          placeholder="no limit"
          value={settings.maxTokens ?? ''}
          onInput={(e) => onChange({ maxTokens: optionalInt(e.currentTarget.value) })}
        />
      </label>
      <label>
        Seed
        <input
          type="number"
          data-testid="seed"
          placeholder="random"
          value={settings.seed ?? ''}
          onInput={(e) => onChange({ seed: optionalInt(e.currentTarget.value) })}
        />
      </label>
      <label class="wide">
        Tools (JSON array of OpenAI tool definitions; empty sends none)
        <textarea
          data-testid="tools"
          rows={2}
          value={settings.tools}
          onInput={(e) => onChange({ tools: e.currentTarget.value })}
        />
      </label>
    </div>
  );
}

function MessageView({ message: m, onRegenerate }: { message: Message; onRegenerate: (() => void) | null }) {
  const html = useMemo(() => (m.role === 'assistant' ? renderMarkdown(m.content) : null), [m.role, m.content]);
  const [copied, setCopied] = useState(false);
  const tokens = m.usage?.completion_tokens;
  const genMs = m.totalMs !== undefined && m.ttftMs !== undefined ? m.totalMs - m.ttftMs : undefined;
  return (
    <article
      class={`message ${m.role}`}
      data-testid={`message-${m.role}`}
      data-streaming={m.streaming ? 'true' : 'false'}
    >
      <div class="role">{m.role === 'user' ? 'You' : 'Assistant'}</div>
      {m.reasoning !== undefined && m.reasoning !== '' && (
        <details class="reasoning" data-testid="reasoning">
          <summary>Reasoning{m.streaming && m.content === '' ? '…' : ''}</summary>
          <div class="reasoning-text">{m.reasoning}</div>
        </details>
      )}
      {html !== null ? (
        // Sanitised by renderMarkdown (DOMPurify).
        <div class="content markdown" data-testid="content" dangerouslySetInnerHTML={{ __html: html }} />
      ) : (
        <div class="content plain" data-testid="content">
          {m.content}
        </div>
      )}
      {(m.toolCalls ?? []).map((call) => (
        <div class="tool-call" data-testid="tool-call" key={call.id || call.name}>
          <div class="tool-name">
            Tool call: <code>{call.name}</code>
            {call.id !== '' && <span class="muted"> ({call.id})</span>}
          </div>
          <pre>{prettyJson(call.arguments)}</pre>
        </div>
      ))}
      {m.streaming && m.content === '' && (m.toolCalls?.length ?? 0) === 0 && (
        <div class="muted">waiting for a slot…</div>
      )}
      {m.error !== undefined && (
        <div class="error" data-testid="error">
          {m.error}
        </div>
      )}
      {m.role === 'assistant' && !m.streaming && (
        <div class="meta">
          {m.stopped && <span class="badge">stopped</span>}
          {m.finish !== undefined && m.finish !== 'stop' && <span class="badge">{m.finish}</span>}
          {tokens !== undefined && <span>{tokens} tokens</span>}
          {m.ttftMs !== undefined && <span>first token {fmtMs(m.ttftMs)}</span>}
          {tokens !== undefined && genMs !== undefined && genMs > 0 && tokens > 1 && (
            <span>{fmtRate(((tokens - 1) * 1000) / genMs)} tokens/s</span>
          )}
          <button
            type="button"
            class="link"
            data-testid="copy"
            onClick={() => {
              void copyText(m.content).then((ok) => {
                setCopied(ok);
                setTimeout(() => setCopied(false), 1500);
              });
            }}
          >
            {copied ? 'copied' : 'copy'}
          </button>
          {onRegenerate !== null && (
            <button type="button" class="link" data-testid="regenerate" onClick={onRegenerate}>
              regenerate
            </button>
          )}
        </div>
      )}
    </article>
  );
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text; // still arriving, or not JSON: as it is
  }
}

/** The clipboard API exists only on secure origins (https, localhost); elsewhere the old way. */
async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard !== undefined) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.append(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  return ok;
}
