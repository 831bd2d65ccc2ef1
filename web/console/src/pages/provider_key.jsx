// "My provider key": the caller's own key for a model provider ("bring your own key", docs/VAULT.md).
// The key is typed into an uncontrolled password field and read from the form only when it is sent:
// it never enters component state, and the field is emptied as soon as the request is over. After
// saving, only the server's masked form (e.g. "sk-…abcd") is shown.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import {
  Confirm, ErrorMessage, Field, Loading, Notice, PageTitle, fmtDate, useAction, useLoad,
} from '../ui.jsx';
import './account.css';

const DEFAULT_PROVIDER = 'openai'; // what the API assumes when no provider is named
const PROVIDER_NAME = /^[a-z0-9_-]{1,64}$/;

const keyPath = (user, provider) =>
  `/api/v1/users/${encodeURIComponent(user.id)}/api-key?provider=${encodeURIComponent(provider)}`;

// Provider names to suggest: the default, the one in the address, and the providers of the models
// the caller can already use (a provider that needs the caller's key lists no models before one is
// set, so the field stays free text).
function useProviderSuggestions(initial) {
  const { data } = useLoad(async () => {
    try {
      const models = await api('/v1/models');
      return (models.data || []).map((m) => m.owned_by).filter((p) => p && p !== 'demo');
    } catch {
      return []; // suggestions only: the page works without them
    }
  }, []);
  return [...new Set([DEFAULT_PROVIDER, initial, ...(data || [])].filter(Boolean))];
}

// The error of a save, in words that fit this page (INVALID_API_KEY is the provider's refusal).
function SaveError({ error }) {
  if (error && error.code === 'INVALID_API_KEY') {
    return (
      <p class="error" role="alert" data-code="INVALID_API_KEY">
        The provider refused this key, so it was not saved (INVALID_API_KEY). Check that you copied the whole
        key, that it is still active at the provider, and that it belongs to this provider.
      </p>
    );
  }
  return <ErrorMessage error={error} />;
}

// What is stored for `provider`: the masked key and its dates, or the "no key yet" explanation.
function StoredKey({ state, provider, onDelete, deleting }) {
  const stale = !state.data || state.data.provider !== provider; // data of another provider
  if (state.loading && stale) return <Loading label="Looking for a stored key…" />;
  if (state.error && state.error.status !== 404) return <ErrorMessage error={state.error} />;
  const key = state.error ? null : state.data;
  if (!key) {
    return (
      <div class="account-empty" data-code="API_KEY_NOT_CONFIGURED" data-testid="no-provider-key">
        <p>
          <strong>No key is set for “{provider}” yet</strong> (API_KEY_NOT_CONFIGURED).
        </p>
        <p class="muted">
          A provider key is your own API key from a model provider (for example an OpenAI key starting with
          “sk-”). Where the deployment asks users to bring their own key, parley sends your requests to
          the provider with it, so the calls are billed to your provider account. Without one, chats with
          that provider's models fail with “API_KEY_NOT_CONFIGURED”. parley stores the key encrypted and
          never shows it again: only a masked form such as “sk-…abcd”.
        </p>
      </div>
    );
  }
  return (
    <dl class="account-facts" data-testid="provider-key">
      <dt>Provider</dt>
      <dd>{key.provider}</dd>
      <dt>Key</dt>
      <dd>
        <code data-testid="masked-key">{key.api_key_masked}</code>
      </dd>
      <dt>Set</dt>
      <dd>{fmtDate(key.updated_at)}</dd>
      {key.created_at !== key.updated_at && (
        <>
          <dt>First added</dt>
          <dd>{fmtDate(key.created_at)}</dd>
        </>
      )}
      <dt class="account-sr">Actions</dt>
      <dd class="account-fact-actions">
        <button type="button" class="danger" onClick={onDelete} disabled={deleting}>
          Delete key
        </button>
      </dd>
    </dl>
  );
}

export function ProviderKeyPage({ user, params }) {
  const initial = params && params[0] && PROVIDER_NAME.test(params[0]) ? params[0] : DEFAULT_PROVIDER;
  // `draft` is what the provider field shows; `provider` the committed name the page works on.
  const [draft, setDraft] = useState(initial);
  const [provider, setProvider] = useState(initial);
  const [notice, setNotice] = useState('');
  const [confirming, setConfirming] = useState(false);
  const suggestions = useProviderSuggestions(initial);

  const stored = useLoad(() => api(keyPath(user, provider)), [user.id, provider]);

  const commitProvider = () => {
    const name = draft.trim();
    if (name && name !== provider && PROVIDER_NAME.test(name)) {
      setNotice('');
      setProvider(name);
    }
  };

  const [save, saving, saveError] = useAction(async (form) => {
    const input = form.elements.api_key;
    const verify = form.elements.verify.checked;
    try {
      const saved = await api(`/api/v1/users/${encodeURIComponent(user.id)}/api-key`, {
        method: 'PUT',
        body: { api_key: input.value, provider, verify },
      });
      stored.setData(saved);
      stored.reload();
      setNotice(verify ? 'The provider accepted the key; it is saved.' : 'The key is saved (not verified).');
    } finally {
      input.value = ''; // the key leaves the page whatever the answer
    }
  });

  const [remove, deleting, deleteError] = useAction(async () => {
    await api(keyPath(user, provider), { method: 'DELETE' });
    setNotice('The key is deleted.');
    stored.reload();
  });

  const hasKey = !stored.error && !!stored.data;
  const badProvider = draft.trim() !== '' && !PROVIDER_NAME.test(draft.trim());

  return (
    <section class="account">
      <PageTitle>My provider key</PageTitle>
      <p class="muted">
        Your own key for a model provider, used for your requests where the deployment asks users to bring
        their own key. It is stored encrypted; after saving, only a masked form is ever shown.
      </p>

      <form
        class="account-provider"
        onSubmit={(e) => {
          e.preventDefault();
          commitProvider();
        }}
      >
        <Field
          label="Provider"
          name="provider"
          list="account-providers"
          autocomplete="off"
          spellcheck={false}
          hint="The provider's name in this deployment (lower case letters, digits, “-” and “_”)."
          value={draft}
          aria-invalid={badProvider || undefined}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onChange={commitProvider}
        />
        <datalist id="account-providers">
          {suggestions.map((p) => (
            <option key={p} value={p} />
          ))}
        </datalist>
        {badProvider && (
          <p class="error" role="alert">
            A provider name has 1–64 characters: lower case letters, digits, “-” and “_”.
          </p>
        )}
        <button type="submit">Show this provider</button>
      </form>

      <h2>Stored key</h2>
      <StoredKey state={stored} provider={provider} deleting={deleting} onDelete={() => setConfirming(true)} />
      <ErrorMessage error={deleteError} />

      <h2>{hasKey ? 'Replace the key' : 'Set a key'}</h2>
      <form
        class="account-form"
        onSubmit={(e) => {
          e.preventDefault();
          setNotice('');
          save(e.currentTarget);
        }}
      >
        <Field
          label={`API key for “${provider}”`}
          name="api_key"
          type="password"
          required
          minLength={8}
          maxLength={512}
          autocomplete="off"
          spellcheck={false}
          hint="8–512 characters without spaces. It is sent once and never shown again."
        />
        <div class="account-check">
          <input id="account-verify" type="checkbox" name="verify" defaultChecked />
          <label for="account-verify">Verify with the provider before saving</label>
        </div>
        <p class="hint account-check-hint">
          parley tries the key with the provider first and stores it only if the provider accepts it.
        </p>
        <SaveError error={saveError} />
        <Notice>{notice}</Notice>
        <div class="actions">
          <button type="submit" class="primary" disabled={saving}>
            {saving ? 'Saving…' : hasKey ? 'Replace key' : 'Save key'}
          </button>
        </div>
      </form>

      <Confirm
        open={confirming}
        title="Delete the provider key?"
        message={
          `The key for “${provider}” is deleted from parley. ` +
          'Requests that need it will fail until you set a key again.'
        }
        confirmLabel="Delete key"
        danger
        onAnswer={(yes) => {
          setConfirming(false);
          if (yes) {
            setNotice('');
            remove();
          }
        }}
      />
    </section>
  );
}
