// The web page: a chat and a live view of the scheduler, one tab each (#chat, #live). Both stay mounted, so
// an answer keeps streaming while the live view is shown; the live view streams only while it is visible.
// A server with several models (router mode) gets a model picker in the header: the chat asks the picked one.
import './app.css';
import 'uplot/dist/uPlot.min.css';
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, apiFetch } from './api.ts';
import { ChatView } from './chat/chat-view.tsx';
import { KeyDialog } from './key-dialog.tsx';
import { LiveView } from './live/live-view.tsx';

type Tab = 'chat' | 'live';

/** One entry of GET /v1/models; router mode adds each model's status. */
interface ListedModel {
  id: string;
  status?: { value?: string };
}

const PICKED_STORAGE = 'llama-slots:model';
/** How often a router's listing is asked again, so that the picker's statuses stay current. */
const REFRESH_MS = 5000;

const tabOf = (hash: string): Tab => (hash === '#live' ? 'live' : 'chat');

function App() {
  const [tab, setTab] = useState<Tab>(tabOf(location.hash));
  const [models, setModels] = useState<ListedModel[]>([]);
  const [picked, setPicked] = useState<string | null>(localStorage.getItem(PICKED_STORAGE));
  const [problem, setProblem] = useState<string | null>(null);
  const [askKey, setAskKey] = useState(false);
  const [keyVersion, setKeyVersion] = useState(0);
  const onUnauthorized = useCallback(() => setAskKey(true), []);

  useEffect(() => {
    const onHash = (): void => setTab(tabOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // The models' ids (and statuses), and whether the server wants a key (every route but /health does when it has one).
  const refresh = useCallback(
    (signal?: AbortSignal): Promise<void> =>
      apiFetch('/v1/models', signal ? { signal } : {})
        .then((r) => r.json() as Promise<{ data?: ListedModel[] }>)
        .then((body) => {
          setModels(body.data ?? []);
          setProblem(null);
        })
        .catch((err: unknown) => {
          if (signal?.aborted) return;
          if (err instanceof ApiError && err.unauthorized) setAskKey(true);
          else setProblem(err instanceof Error ? err.message : String(err));
        }),
    [],
  );
  useEffect(() => {
    const ac = new AbortController();
    void refresh(ac.signal);
    return () => ac.abort();
  }, [keyVersion, refresh]);

  // Several models: their statuses change (loading, loaded, sleeping…), so the listing is asked again now and then.
  const router = models.length > 1;
  useEffect(() => {
    if (!router || askKey) return;
    const timer = setInterval(() => void refresh(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [router, askKey, refresh]);

  // The picked model while the server lists it, else the first.
  const model = models.find((m) => m.id === picked)?.id ?? models[0]?.id ?? null;
  const pick = (id: string): void => {
    setPicked(id);
    localStorage.setItem(PICKED_STORAGE, id);
  };

  return (
    <>
      <header>
        <h1>llama-slots-server</h1>
        <nav>
          <a href="#chat" class={tab === 'chat' ? 'active' : ''} data-testid="tab-chat">
            Chat
          </a>
          <a href="#live" class={tab === 'live' ? 'active' : ''} data-testid="tab-live">
            Live
          </a>
        </nav>
        {router ? (
          <select
            class="model"
            data-testid="model-picker"
            title="The model the chat asks"
            value={model ?? ''}
            onFocus={() => void refresh()}
            onChange={(e) => pick(e.currentTarget.value)}
          >
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.status?.value !== undefined ? `${m.id} (${m.status.value})` : m.id}
              </option>
            ))}
          </select>
        ) : (
          <span class="model" data-testid="model">
            {model ?? ''}
          </span>
        )}
        <button type="button" class="link" data-testid="key-button" onClick={() => setAskKey(true)}>
          API key
        </button>
      </header>
      {problem !== null && <div class="banner error">{problem}</div>}
      <main>
        <div hidden={tab !== 'chat'} class="view">
          <ChatView model={model} onUnauthorized={onUnauthorized} />
        </div>
        <div hidden={tab !== 'live'} class="view">
          <LiveView active={tab === 'live'} keyVersion={keyVersion} onUnauthorized={onUnauthorized} />
        </div>
      </main>
      {askKey && (
        <KeyDialog
          onSaved={() => {
            setAskKey(false);
            setKeyVersion((v) => v + 1);
          }}
          onCancel={() => setAskKey(false)}
        />
      )}
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
