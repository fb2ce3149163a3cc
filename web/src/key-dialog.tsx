// Asks for the server's API key (llama-server's --api-key) and keeps it in this browser.
import { useState } from 'preact/hooks';
import { apiKey, setApiKey } from './api.ts';

export function KeyDialog({ onSaved, onCancel }: { onSaved(): void; onCancel(): void }) {
  const [key, setKey] = useState(apiKey());
  const refused = apiKey() !== '';
  return (
    <div class="overlay">
      <form
        class="dialog"
        data-testid="key-dialog"
        onSubmit={(e) => {
          e.preventDefault();
          setApiKey(key.trim());
          onSaved();
        }}
      >
        <h2>API key</h2>
        <p>
          {refused
            ? 'The server refused the key this browser has. Enter another one.'
            : 'This server wants an API key (its --api-key). It is kept in this browser only.'}
        </p>
        <input
          type="password"
          data-testid="key-input"
          autocomplete="off"
          placeholder="sk-…"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <div class="actions">
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" class="primary" data-testid="key-save" disabled={key.trim() === ''}>
            Save
          </button>
        </div>
      </form>
    </div>
  );
}
