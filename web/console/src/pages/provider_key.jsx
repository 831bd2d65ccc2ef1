// "My provider key": the caller's own keys for the model providers that take one ("bring your own
// key", docs/VAULT.md). The page lists the providers of GET /api/v1/providers whose `user_key` is
// "required" (byok) or "optional" (byok_or_system), with their models and the caller's key for
// each (GET /api/v1/users/{id}/provider-keys, masked), and sets, replaces and deletes keys.
//
// A key is typed into an uncontrolled password field inside a dialog and read from the form only
// when it is sent: it never enters component state, the field is emptied as soon as the request is
// over, and the dialog (field included) leaves the DOM when it closes. Only the server's masked
// form (e.g. "sk-…abcd") is ever shown.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import {
  Confirm, Dialog, ErrorMessage, Field, Loading, Notice, PageTitle, fmtDate, useAction, useLoad,
} from '../ui.jsx';
import './account.css';

const keysPath = (user) => `/api/v1/users/${encodeURIComponent(user.id)}/provider-keys`;
const keyPath = (user, provider) =>
  `/api/v1/users/${encodeURIComponent(user.id)}/api-key?provider=${encodeURIComponent(provider)}`;

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

// The form of the set / replace dialog. Mounted anew each time the dialog opens, so no error or
// value of an earlier attempt remains.
function KeyForm({ user, provider, hasKey, onSaved, onCancel }) {
  const [save, saving, saveError] = useAction(async (form) => {
    const input = form.elements.api_key;
    const verify = form.elements.verify.checked;
    try {
      const saved = await api(`/api/v1/users/${encodeURIComponent(user.id)}/api-key`, {
        method: 'PUT',
        body: { api_key: input.value, provider: provider.name, verify },
      });
      onSaved(saved, verify);
    } finally {
      input.value = ''; // the key leaves the page whatever the answer
    }
  });
  return (
    <form
      class="account-form"
      onSubmit={(e) => {
        e.preventDefault();
        save(e.currentTarget);
      }}
    >
      <Field
        label={`API key for “${provider.name}”`}
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
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={saving}>
          {saving ? 'Saving…' : hasKey ? 'Replace key' : 'Save key'}
        </button>
      </div>
    </form>
  );
}

// Whether the provider needs the caller's key, in words.
function Need({ provider }) {
  if (provider.user_key === 'required') {
    return (
      <span>
        <strong>Required</strong>: its models answer only with your key.
      </span>
    );
  }
  return (
    <span>
      <strong>Optional</strong>: the server's key is used when you set none.
    </span>
  );
}

// The caller's key for one provider: masked, with when it was set; or "No key".
function StoredKey({ provider, stored }) {
  if (stored) {
    return (
      <div>
        <code data-testid="masked-key">{stored.api_key_masked}</code>
        <div class="muted">Set {fmtDate(stored.updated_at)}</div>
        {stored.created_at !== stored.updated_at && (
          <div class="muted">First added {fmtDate(stored.created_at)}</div>
        )}
      </div>
    );
  }
  if (provider.user_key === 'required') {
    return (
      <div data-code="API_KEY_NOT_CONFIGURED" data-testid="no-key">
        <strong>No key</strong>
        <div class="muted">Its models answer API_KEY_NOT_CONFIGURED.</div>
      </div>
    );
  }
  return (
    <div data-testid="no-key">
      <strong>No key</strong>
      <div class="muted">The server's key is used.</div>
    </div>
  );
}

// The table rows are given explicit roles: at phone width they are laid out as cards (CSS display
// changes), which would otherwise cost the table its semantics in some browsers.
function ProviderRow({ provider, stored, target, busy, onSet, onDelete }) {
  const setButton = useRef(null);
  // Opened as #/provider-key/<name> (e.g. from a chat that needs the key): that row's button has focus.
  useEffect(() => {
    if (target) setButton.current?.focus();
  }, [target]);
  return (
    <tr role="row" data-provider={provider.name} class={target ? 'account-row-target' : undefined}>
      <th scope="row" role="rowheader" data-label="Provider">
        {provider.name}
      </th>
      <td role="cell" data-label="Models">
        <ul class="account-models">
          {(provider.models || []).map((m) => (
            <li key={m}>
              <code>{m}</code>
            </li>
          ))}
        </ul>
      </td>
      <td role="cell" data-label="Key needed">
        <Need provider={provider} />
      </td>
      <td role="cell" data-label="Your key">
        <StoredKey provider={provider} stored={stored} />
      </td>
      <td role="cell" data-label="Actions">
        <div class="actions account-row-actions">
          <button
            type="button"
            ref={setButton}
            class={stored ? undefined : 'primary'}
            onClick={onSet}
            disabled={busy}
          >
            {stored ? 'Replace key' : 'Set key'}
            <span class="account-sr"> for {provider.name}</span>
          </button>
          {stored && (
            <button type="button" class="danger" onClick={onDelete} disabled={busy}>
              Delete key<span class="account-sr"> for {provider.name}</span>
            </button>
          )}
        </div>
      </td>
    </tr>
  );
}

export function ProviderKeyPage({ user, params }) {
  const target = params && params[0] ? params[0] : null;
  const providers = useLoad(() => api('/api/v1/providers'), []);
  const keys = useLoad(() => api(keysPath(user)), [user.id]);
  const [editing, setEditing] = useState(null); // the provider whose key the dialog sets
  const [deleting, setDeleting] = useState(null); // the provider name whose deletion is asked
  const [notice, setNotice] = useState('');

  const [remove, removing, removeError] = useAction(async (name) => {
    await api(keyPath(user, name), { method: 'DELETE' });
    keys.setData((d) => ({ data: (d?.data || []).filter((k) => k.provider !== name) }));
    setNotice(`The key for “${name}” is deleted.`);
    keys.reload();
  });

  const stored = new Map((keys.data?.data || []).map((k) => [k.provider, k]));
  const all = providers.data?.data || [];
  const taking = all.filter((p) => p.user_key === 'required' || p.user_key === 'optional');
  const names = new Set(taking.map((p) => p.name));
  // Keys kept for providers that do not use them here (removed from the configuration, or now on
  // the server's key only): listed so that they can be deleted.
  const others = [...stored.values()].filter((k) => !names.has(k.provider));
  const missing = taking.filter((p) => p.user_key === 'required' && !stored.has(p.name)).map((p) => p.name);
  const wildcard = taking.some((p) => (p.models || []).some((m) => m.endsWith('*')));
  const deletingProvider = all.find((p) => p.name === deleting);
  const loaded = providers.data && keys.data;

  return (
    <section class="account">
      <PageTitle>My provider key</PageTitle>
      <p class="muted account-intro">
        A provider key is your own API key from a model provider (for example an OpenAI key starting with
        “sk-”). For the providers below, parley sends your requests with it, so the calls are billed to
        your provider account. It is stored encrypted and never shown again: only a masked form such as
        “sk-…abcd”.
      </p>

      <ErrorMessage error={providers.error} />
      <ErrorMessage error={keys.error} />
      <Notice>{notice}</Notice>
      <ErrorMessage error={removeError} />

      {!loaded && !providers.error && !keys.error && <Loading label="Loading the providers…" />}

      {loaded && taking.length === 0 && (
        <div class="account-empty" data-testid="no-user-key-providers">
          <p>
            <strong>No provider here takes your own key.</strong>
          </p>
          <p class="muted">
            This deployment calls every model provider with the server's keys, so there is nothing to set.
          </p>
        </div>
      )}

      {loaded && taking.length > 0 && (
        <>
          {missing.length > 0 && (
            <div class="account-empty" data-code="API_KEY_NOT_CONFIGURED" data-testid="missing-keys">
              <p>
                <strong>
                  You have no key yet for {missing.map((n) => `“${n}”`).join(', ')}
                </strong>{' '}
                (API_KEY_NOT_CONFIGURED).
              </p>
              <p class="muted">
                {missing.length === 1 ? 'That provider uses' : 'Those providers use'} your own key only:
                until you set one, chats with {missing.length === 1 ? 'its' : 'their'} models fail with
                “API_KEY_NOT_CONFIGURED”.
              </p>
            </div>
          )}
          <h2>Providers that take your key</h2>
          <div class="table-wrap">
            <table class="account-table account-providers" role="table">
              <caption class="account-sr">Providers that take your own key, and your key for each</caption>
              <thead role="rowgroup">
                <tr role="row">
                  <th scope="col" role="columnheader">Provider</th>
                  <th scope="col" role="columnheader">Models</th>
                  <th scope="col" role="columnheader">Key needed</th>
                  <th scope="col" role="columnheader">Your key</th>
                  <th scope="col" role="columnheader">Actions</th>
                </tr>
              </thead>
              <tbody role="rowgroup">
                {taking.map((p) => (
                  <ProviderRow
                    key={p.name}
                    provider={p}
                    stored={stored.get(p.name)}
                    target={p.name === target}
                    busy={removing}
                    onSet={() => {
                      setNotice('');
                      setEditing(p);
                    }}
                    onDelete={() => {
                      setNotice('');
                      setDeleting(p.name);
                    }}
                  />
                ))}
              </tbody>
            </table>
          </div>
          {wildcard && (
            <p class="hint">A model name ending in “*” stands for every model whose name starts so.</p>
          )}
        </>
      )}

      {loaded && others.length > 0 && (
        <>
          <h2>Other stored keys</h2>
          <p class="muted">
            No provider here uses these keys now; parley keeps them until you delete them.
          </p>
          <ul class="account-other-keys">
            {others.map((k) => (
              <li key={k.provider} data-provider={k.provider}>
                <span>
                  <strong>{k.provider}</strong> <code data-testid="masked-key">{k.api_key_masked}</code>{' '}
                  <span class="muted">set {fmtDate(k.updated_at)}</span>
                </span>
                <button
                  type="button"
                  class="danger"
                  disabled={removing}
                  onClick={() => setDeleting(k.provider)}
                >
                  Delete key<span class="account-sr"> for {k.provider}</span>
                </button>
              </li>
            ))}
          </ul>
        </>
      )}

      <Dialog
        open={!!editing}
        title={
          editing
            ? `${stored.has(editing.name) ? 'Replace' : 'Set'} your key for “${editing.name}”`
            : 'Provider key'
        }
        onClose={() => setEditing(null)}
      >
        {editing && (
          <KeyForm
            user={user}
            provider={editing}
            hasKey={stored.has(editing.name)}
            onCancel={() => setEditing(null)}
            onSaved={(saved, verified) => {
              keys.setData((d) => ({
                data: [...(d?.data || []).filter((k) => k.provider !== saved.provider), saved],
              }));
              setEditing(null);
              setNotice(
                verified
                  ? `The provider accepted the key for “${saved.provider}”; it is saved.`
                  : `The key for “${saved.provider}” is saved (not verified).`,
              );
              keys.reload();
            }}
          />
        )}
      </Dialog>

      <Confirm
        open={!!deleting}
        title="Delete the provider key?"
        message={
          `Your key for “${deleting ?? ''}” is deleted from parley. ` +
          (deletingProvider?.user_key === 'required'
            ? 'Chats with its models fail (API_KEY_NOT_CONFIGURED) until you set a key again.'
            : deletingProvider?.user_key === 'optional'
              ? "Its models are then called with the server's key."
              : '')
        }
        confirmLabel="Delete key"
        danger
        onAnswer={(yes) => {
          const name = deleting;
          setDeleting(null);
          if (yes && name) remove(name);
        }}
      />
    </section>
  );
}
