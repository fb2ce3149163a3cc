// The web page: a chat and a live view of the scheduler, one tab each (#chat, #live). Both stay mounted, so
// an answer keeps streaming while the live view is shown; the live view streams only while it is visible.
import './app.css';
import 'uplot/dist/uPlot.min.css';
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, apiFetch } from './api.ts';
import { ChatView } from './chat/chat-view.tsx';
import { KeyDialog } from './key-dialog.tsx';
import { LiveView } from './live/live-view.tsx';

type Tab = 'chat' | 'live';

const tabOf = (hash: string): Tab => (hash === '#live' ? 'live' : 'chat');

function App() {
  const [tab, setTab] = useState<Tab>(tabOf(location.hash));
  const [model, setModel] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [askKey, setAskKey] = useState(false);
  const [keyVersion, setKeyVersion] = useState(0);
  const onUnauthorized = useCallback(() => setAskKey(true), []);

  useEffect(() => {
    const onHash = (): void => setTab(tabOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  // The model's id, and whether the server wants a key (every route but /health does when it has one).
  useEffect(() => {
    const ac = new AbortController();
    apiFetch('/v1/models', { signal: ac.signal })
      .then((r) => r.json() as Promise<{ data?: Array<{ id: string }> }>)
      .then((body) => {
        setModel(body.data?.[0]?.id ?? null);
        setProblem(null);
      })
      .catch((err: unknown) => {
        if (ac.signal.aborted) return;
        if (err instanceof ApiError && err.unauthorized) setAskKey(true);
        else setProblem(err instanceof Error ? err.message : String(err));
      });
    return () => ac.abort();
  }, [keyVersion]);

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
        <span class="model" data-testid="model">
          {model ?? ''}
        </span>
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
