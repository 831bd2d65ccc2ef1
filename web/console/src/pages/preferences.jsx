// "Preferences": what the assistant and the chat use by default (docs/ASSISTANT.md,
// docs/CONVERSATIONS.md): language, voice, default model, system prompt, and the phone assistant's
// settings. Saved with PATCH /api/v1/users/{id}/preferences; a validation error of the server is
// shown next to the field it names (error.param).
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorMessage, Field, Loading, Notice, PageTitle, fmtDate, useAction, useLoad } from '../ui.jsx';
import './account.css';

// The voices parley accepts (openapi: Preferences.tts_voice).
const VOICES = [
  'alloy', 'ash', 'ballad', 'cedar', 'coral', 'echo', 'fable', 'marin', 'nova', 'onyx', 'sage', 'shimmer',
  'verse',
];
const FIELDS = [
  'language', 'tts_voice', 'default_model', 'system_prompt', 'conversation_timeout', 'auto_reply_enabled',
  'notifications',
];
const SYSTEM_PROMPT_MAX = 4000;
const OTHER = '(another model)'; // the select's value for "Another model…" (not a model name)

const prefsPath = (user) => `/api/v1/users/${encodeURIComponent(user.id)}/preferences`;

// The form's values from the server's record (null → empty text for the controls).
function toForm(p) {
  return {
    language: p.language ?? '',
    tts_voice: p.tts_voice ?? 'alloy',
    default_model: p.default_model ?? '',
    system_prompt: p.system_prompt ?? '',
    conversation_timeout: String(p.conversation_timeout ?? 300),
    auto_reply_enabled: !!p.auto_reply_enabled,
    notifications: p.notifications !== false,
  };
}

// The PATCH body: empty model / prompt unset the value (null), the timeout as a number.
function toBody(f) {
  const timeout = Number(f.conversation_timeout);
  return {
    language: f.language.trim(),
    tts_voice: f.tts_voice,
    default_model: f.default_model.trim() || null,
    system_prompt: f.system_prompt.trim() ? f.system_prompt : null,
    conversation_timeout: Number.isInteger(timeout) ? timeout : f.conversation_timeout,
    auto_reply_enabled: f.auto_reply_enabled,
    notifications: f.notifications,
  };
}

// A checkbox with its label beside it.
function Check({ id, label, checked, onChange, hint }) {
  return (
    <div class="field">
      <div class="account-check">
        <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange(e.currentTarget.checked)} />
        <label for={id}>{label}</label>
      </div>
      {hint && <small class="hint account-check-hint">{hint}</small>}
    </div>
  );
}

function PreferencesForm({ user, initial, models, onSaved }) {
  const [form, setForm] = useState(() => toForm(initial));
  // "Another model…": a name typed in, for models the list does not name (or no longer offers).
  const listed = (id) => models.some((m) => m.id === id);
  const [custom, setCustom] = useState(() => !!initial.default_model && !listed(initial.default_model));
  const [notice, setNotice] = useState('');
  const [save, saving, error] = useAction(async () => {
    const saved = await api(prefsPath(user), { method: 'PATCH', body: toBody(form) });
    setForm(toForm(saved));
    setCustom(!!saved.default_model && !listed(saved.default_model));
    onSaved(saved);
    setNotice('Preferences saved.');
  });
  const set = (k) => (e) => {
    setNotice('');
    setForm({ ...form, [k]: e.currentTarget.value });
  };
  // The server's error for one field (shown beside it), and for none of them (shown at the end).
  const fieldError = (name) => (error && error.param === name ? error : null);
  const generalError = error && !FIELDS.includes(error.param) ? error : null;
  // Marks a control invalid and links it to its error (and to its hint, which Field links otherwise).
  const errorProps = (name, hint = true) =>
    fieldError(name)
      ? { 'aria-invalid': true, 'aria-describedby': `${hint ? `pref-${name}-hint ` : ''}pref-${name}-error` }
      : {};


  return (
    <form
      class="account-form"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <fieldset>
        <legend>Language and voice</legend>
        <Field
          label="Language"
          id="pref-language"
          autocomplete="off"
          spellcheck={false}
          value={form.language}
          onInput={set('language')}
          hint="A language tag such as “en” or “pt-BR”: the assistant answers in it."
          {...errorProps('language')}
        />
        <ErrorMessage error={fieldError('language')} id="pref-language-error" />

        <Field
          label="Voice"
          as="select"
          id="pref-tts_voice"
          value={form.tts_voice}
          onChange={set('tts_voice')}
          hint="The voice of the assistant's spoken answers."
          {...errorProps('tts_voice')}
        >
          {VOICES.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </Field>
        <ErrorMessage error={fieldError('tts_voice')} id="pref-tts_voice-error" />
      </fieldset>

      <fieldset>
        <legend>Conversations</legend>
        <Field
          label="Default model"
          as="select"
          id="pref-default_model"
          value={custom ? OTHER : form.default_model}
          onChange={(e) => {
            const v = e.currentTarget.value;
            setNotice('');
            setCustom(v === OTHER);
            setForm({ ...form, default_model: v === OTHER ? (custom ? form.default_model : '') : v });
          }}
          hint={
            'Used by chats and the assistant when a request names no model. ' +
            "“Server default” is the deployment's choice."
          }
          {...errorProps(custom ? 'none' : 'default_model')}
        >
          <option value="">Server default</option>
          {models.map((m) => (
            <option key={m.id} value={m.id}>
              {m.owned_by ? `${m.id} (${m.owned_by})` : m.id}
            </option>
          ))}
          <option value={OTHER}>Another model…</option>
        </Field>
        {custom && (
          <Field
            label="Model name"
            id="pref-default_model-name"
            autocomplete="off"
            spellcheck={false}
            required
            maxLength={128}
            hint={
              'A model the deployment serves that is not in the list ' +
              '(for example one matched by a prefix such as “gpt-*”).'
            }
            value={form.default_model}
            onInput={set('default_model')}
            {...(fieldError('default_model')
              ? {
                  'aria-invalid': true,
                  'aria-describedby': 'pref-default_model-name-hint pref-default_model-error',
                }
              : {})}
          />
        )}
        <ErrorMessage error={fieldError('default_model')} id="pref-default_model-error" />

        <Field
          label="System prompt"
          as="textarea"
          id="pref-system_prompt"
          rows={6}
          maxLength={SYSTEM_PROMPT_MAX}
          value={form.system_prompt}
          onInput={set('system_prompt')}
          hint={
            'Instructions given to the model before every conversation ' +
            `(${form.system_prompt.length} / ${SYSTEM_PROMPT_MAX} characters). Leave empty for parley's own prompt.`
          }
          {...errorProps('system_prompt')}
        />
        <ErrorMessage error={fieldError('system_prompt')} id="pref-system_prompt-error" />
      </fieldset>

      <fieldset>
        <legend>Phone assistant</legend>
        <Field
          label="Conversation timeout (seconds)"
          id="pref-conversation_timeout"
          type="number"
          inputMode="numeric"
          min={30}
          max={86400}
          step={1}
          value={form.conversation_timeout}
          onInput={set('conversation_timeout')}
          {...errorProps('conversation_timeout', false)}
        />
        <ErrorMessage error={fieldError('conversation_timeout')} id="pref-conversation_timeout-error" />
        <Check
          id="pref-auto_reply_enabled"
          label="Send SMS replies automatically"
          hint="When off, a “yes” decision comes back as a draft for you to send."
          checked={form.auto_reply_enabled}
          onChange={(v) => setForm({ ...form, auto_reply_enabled: v })}
        />
        <ErrorMessage error={fieldError('auto_reply_enabled')} id="pref-auto_reply_enabled-error" />
        <Check
          id="pref-notifications"
          label="Notifications"
          checked={form.notifications}
          onChange={(v) => setForm({ ...form, notifications: v })}
        />
        <ErrorMessage error={fieldError('notifications')} id="pref-notifications-error" />
      </fieldset>

      <ErrorMessage error={generalError} />
      {error && !generalError && (
        <p class="error" role="status">
          Nothing was saved: correct the field marked above.
        </p>
      )}
      <Notice>{notice}</Notice>
      <div class="actions">
        <button type="submit" class="primary" disabled={saving}>
          {saving ? 'Saving…' : 'Save preferences'}
        </button>
      </div>
    </form>
  );
}

export function PreferencesPage({ user }) {
  const prefs = useLoad(() => api(prefsPath(user)), [user.id]);
  // The models the caller can use; without them the select still offers "Server default".
  const models = useLoad(async () => {
    try {
      const list = await api('/v1/models');
      return [...(list.data || [])].sort((a, b) => a.id.localeCompare(b.id));
    } catch {
      return [];
    }
  }, []);

  return (
    <section class="account">
      <PageTitle>Preferences</PageTitle>
      {prefs.error && <ErrorMessage error={prefs.error} />}
      {(prefs.loading && !prefs.data) || models.loading ? (
        <Loading />
      ) : (
        prefs.data && (
          <>
            <p class="muted" data-testid="prefs-updated">
              {prefs.data.updated_at
                ? `Last saved ${fmtDate(prefs.data.updated_at)}.`
                : 'You are using the defaults.'}
            </p>
            <PreferencesForm
              user={user}
              initial={prefs.data}
              models={models.data || []}
              onSaved={(saved) => prefs.setData(saved)}
            />
          </>
        )
      )}
    </section>
  );
}
