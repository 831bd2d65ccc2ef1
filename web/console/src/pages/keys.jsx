// "Service keys": the caller's ai_… keys for the API (docs/IDENTITY.md "Service API keys", limits
// in docs/LIMITS.md). A new key's secret is shown once, in a dialog, and dropped from memory when
// the dialog closes; listings only ever carry its 10-character prefix.
import { useState } from 'preact/hooks';
import { api, query } from '../api.js';
import {
  Confirm, Dialog, ErrorMessage, Field, Loading, Notice, PageTitle, copyText, fmtCost, fmtDate, fmtInt, useAction,
  useLoad,
} from '../ui.jsx';
import './account.css';

const PAGE = 100; // keys shown at first, and added by "Show more"
const MAX_LIMIT = 200; // the largest `limit` GET /api/v1/api-keys accepts
const PERIODS = [
  ['month', 'per month (UTC calendar month)'],
  ['day', 'per day (UTC)'],
  ['total', 'in total (never resets)'],
];
const PER_MINUTE_HINT = 'Empty: the deployment default. 0: no limit.';
const PERIOD_WORD = { day: 'day', month: 'month', total: 'total' };
const LIMIT_FIELDS = [
  'rate_limit_per_minute', 'tokens_per_minute', 'token_budget', 'spend_budget_usd', 'budget_period',
];

// ---- limits: form values (strings) ⇄ API values ------------------------------------------------

const blankLimits = () => ({
  rate_limit_per_minute: '',
  tokens_per_minute: '',
  token_budget: '',
  spend_budget_usd: '',
  budget_period: 'month',
});

function limitsOf(key) {
  const s = (v) => (v === null || v === undefined ? '' : String(v));
  return {
    rate_limit_per_minute: s(key.rate_limit_per_minute),
    tokens_per_minute: s(key.tokens_per_minute),
    token_budget: s(key.token_budget),
    spend_budget_usd: s(key.spend_budget_usd),
    budget_period: key.budget_period || 'month',
  };
}

// Empty → null; a number otherwise (the server checks the range and names the field).
function limitsBody(v) {
  const n = (x) => (String(x).trim() === '' ? null : Number(x));
  return {
    rate_limit_per_minute: n(v.rate_limit_per_minute),
    tokens_per_minute: n(v.tokens_per_minute),
    token_budget: n(v.token_budget),
    spend_budget_usd: n(v.spend_budget_usd),
    budget_period: v.budget_period,
  };
}

// One limit in words: per-minute limits left unset follow the deployment's default; 0 is none.
function perMinute(n, unit) {
  if (n === null || n === undefined) return 'default';
  if (n === 0) return 'no limit';
  return `${fmtInt(n)} ${unit}/min`;
}

function LimitsSummary({ k }) {
  const period = PERIOD_WORD[k.budget_period] || k.budget_period;
  const per = period === 'total' ? 'in total' : `per ${period}`;
  return (
    <ul class="account-limits">
      <li>Requests: {perMinute(k.rate_limit_per_minute, 'req')}</li>
      <li>Tokens: {perMinute(k.tokens_per_minute, 'tokens')}</li>
      {k.token_budget ? (
        <li>
          Token budget: {fmtInt(k.token_budget)} {per}
        </li>
      ) : null}
      {k.spend_budget_usd ? (
        <li>
          Spend budget: {fmtCost(k.spend_budget_usd)} {per}
        </li>
      ) : null}
    </ul>
  );
}

// The limit fields of the create and edit dialogs. `errorFor(name)` is the server's error for a field.
function LimitFields({ values, onChange, errorFor, idPrefix }) {
  const field = (name, label, hint, extra = {}) => {
    const id = `${idPrefix}-${name}`;
    const error = errorFor(name);
    return (
      <>
        <Field
          label={label}
          id={id}
          type="number"
          min={0}
          inputMode="decimal"
          hint={hint}
          value={values[name]}
          onInput={(e) => onChange({ ...values, [name]: e.currentTarget.value })}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? `${id}-hint ${id}-error` : `${id}-hint`}
          {...extra}
        />
        <ErrorMessage error={error} id={`${id}-error`} />
      </>
    );
  };
  const periodId = `${idPrefix}-budget_period`;
  return (
    <fieldset class="account-limit-fields">
      <legend>Limits</legend>
      {field('rate_limit_per_minute', 'Requests per minute', PER_MINUTE_HINT, { step: 1 })}
      {field('tokens_per_minute', 'Tokens per minute', PER_MINUTE_HINT, { step: 1 })}
      {field('token_budget', 'Token budget', 'Tokens per budget period. Empty or 0: no budget.', { step: 1 })}
      {field('spend_budget_usd', 'Spend budget (USD)', 'US dollars per budget period. Empty or 0: no budget.', {
        step: 'any',
      })}
      <Field
        label="Budget period"
        as="select"
        id={periodId}
        value={values.budget_period}
        onChange={(e) => onChange({ ...values, budget_period: e.currentTarget.value })}
      >
        {PERIODS.map(([v, label]) => (
          <option key={v} value={v}>
            {label}
          </option>
        ))}
      </Field>
      <ErrorMessage error={errorFor('budget_period')} id={`${periodId}-error`} />
    </fieldset>
  );
}

// ---- dialogs ------------------------------------------------------------------------------------

// Name, limits and expiry of a new key; calls onCreated with the API's answer (which holds the key).
function CreateDialog({ open, onClose, onCreated }) {
  const [name, setName] = useState('');
  const [limits, setLimits] = useState(blankLimits);
  const [expires, setExpires] = useState('');
  const [create, busy, error, setError] = useAction(async () => {
    const body = { name: name.trim() };
    for (const [k, v] of Object.entries(limitsBody(limits))) if (v !== null) body[k] = v;
    if (expires) body.expires_at = new Date(expires).toISOString(); // local time → UTC with a zone
    const created = await api('/api/v1/api-keys', { method: 'POST', body });
    setName('');
    setLimits(blankLimits());
    setExpires('');
    onCreated(created);
  });
  const errorFor = (p) => (error && error.param === p ? error : null);
  const known = ['name', 'expires_at', ...LIMIT_FIELDS];
  const close = () => {
    setError(null);
    onClose();
  };
  return (
    <Dialog open={open} title="Create a service key" onClose={close}>
      <form
        class="account-form"
        onSubmit={(e) => {
          e.preventDefault();
          create();
        }}
      >
        <Field
          label="Name"
          id="key-new-name"
          required
          maxLength={100}
          autocomplete="off"
          hint="To tell your keys apart, e.g. “CI pipeline”."
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
          aria-invalid={errorFor('name') ? true : undefined}
          aria-describedby={errorFor('name') ? 'key-new-name-hint key-new-name-error' : 'key-new-name-hint'}
        />
        <ErrorMessage error={errorFor('name')} id="key-new-name-error" />
        <LimitFields values={limits} onChange={setLimits} errorFor={errorFor} idPrefix="key-new" />
        <Field
          label="Expires (optional)"
          id="key-new-expires_at"
          type="datetime-local"
          hint="Your local time. Empty: the key never expires."
          value={expires}
          onInput={(e) => setExpires(e.currentTarget.value)}
          aria-invalid={errorFor('expires_at') ? true : undefined}
          aria-describedby={
            errorFor('expires_at') ? 'key-new-expires_at-hint key-new-expires_at-error' : 'key-new-expires_at-hint'
          }
        />
        <ErrorMessage error={errorFor('expires_at')} id="key-new-expires_at-error" />
        <ErrorMessage error={error && !known.includes(error.param) ? error : null} />
        <div class="actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create key'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

// The new key, shown this once. The secret lives only in this dialog's props: closing it drops it.
function ShowOnceDialog({ created, onClose }) {
  const [copied, setCopied] = useState(null);
  const close = () => {
    setCopied(null);
    onClose();
  };
  return (
    <Dialog open={!!created} title="Your new service key" onClose={close}>
      {created && (
        <>
          <p class="account-warning" role="alert">
            <strong>Copy this key now: it will not be shown again.</strong> parley keeps only a hash of it. If you
            lose it, revoke it and create a new one.
          </p>
          <div class="field">
            <label for="key-secret">Key “{created.name}”</label>
            <input
              id="key-secret"
              class="account-secret"
              readOnly
              value={created.key}
              spellcheck={false}
              autocomplete="off"
              onFocus={(e) => e.currentTarget.select()}
            />
          </div>
          <p class="hint">
            Send it as <code>Authorization: Bearer …</code> or <code>X-API-Key: …</code>.
          </p>
          <div class="actions">
            <button type="button" onClick={async () => setCopied((await copyText(created.key)) ? 'yes' : 'no')}>
              Copy key
            </button>
            <button type="button" class="primary" onClick={close}>
              I have copied it, close
            </button>
          </div>
          {copied === 'yes' && <Notice>Copied to the clipboard.</Notice>}
          {copied === 'no' && (
            <p class="error" role="alert">
              The browser did not allow copying: select the key and copy it yourself.
            </p>
          )}
        </>
      )}
    </Dialog>
  );
}

// Name and limits of an existing key (PATCH).
function EditDialog({ keyRecord, onClose, onSaved }) {
  return (
    <Dialog
      open={!!keyRecord}
      title={keyRecord ? `Edit limits of “${keyRecord.name}”` : 'Edit limits'}
      onClose={onClose}
    >
      {keyRecord && <EditForm k={keyRecord} onClose={onClose} onSaved={onSaved} />}
    </Dialog>
  );
}

function EditForm({ k, onClose, onSaved }) {
  const [name, setName] = useState(k.name);
  const [limits, setLimits] = useState(() => limitsOf(k));
  const [save, busy, error] = useAction(async () => {
    const saved = await api(`/api/v1/api-keys/${encodeURIComponent(k.id)}`, {
      method: 'PATCH',
      body: { name: name.trim(), ...limitsBody(limits) },
    });
    onSaved(saved);
  });
  const errorFor = (p) => (error && error.param === p ? error : null);
  return (
    <form
      class="account-form"
      onSubmit={(e) => {
        e.preventDefault();
        save();
      }}
    >
      <Field
        label="Name"
        id="key-edit-name"
        required
        maxLength={100}
        autocomplete="off"
        value={name}
        onInput={(e) => setName(e.currentTarget.value)}
        aria-invalid={errorFor('name') ? true : undefined}
        aria-describedby={errorFor('name') ? 'key-edit-name-error' : undefined}
      />
      <ErrorMessage error={errorFor('name')} id="key-edit-name-error" />
      <LimitFields values={limits} onChange={setLimits} errorFor={errorFor} idPrefix="key-edit" />
      <ErrorMessage error={error && !['name', ...LIMIT_FIELDS].includes(error.param) ? error : null} />
      <div class="actions">
        <button type="button" onClick={onClose}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Saving…' : 'Save limits'}
        </button>
      </div>
    </form>
  );
}

// ---- the list -----------------------------------------------------------------------------------

// The table's roles are spelled out: at phone width its rows are laid out as cards (CSS display
// changes), which would otherwise cost the table its semantics in some browsers.

const STATUS_TEXT = { active: 'Active', inactive: 'Inactive', expired: 'Expired', revoked: 'Revoked' };

function KeyRow({ k, showExpires, onEdit, onRevoke, onToggle, busy }) {
  const open = k.status !== 'revoked';
  return (
    <tr role="row" data-key-id={k.id}>
      <th scope="row" role="rowheader" data-label="Name">
        {k.name}
      </th>
      <td role="cell" data-label="Key">
        <code>{k.key_prefix}…</code>
      </td>
      <td role="cell" data-label="Status">
        <div>
          <span class={`account-status account-status-${k.status}`}>{STATUS_TEXT[k.status] || k.status}</span>
          {k.status === 'revoked' && k.revoked_at && <div class="muted">{fmtDate(k.revoked_at)}</div>}
        </div>
      </td>
      <td role="cell" data-label="Created">{fmtDate(k.created_at)}</td>
      <td role="cell" data-label="Last used">{k.last_used_at ? fmtDate(k.last_used_at) : 'Never'}</td>
      {showExpires && (
        <td role="cell" data-label="Expires">
          {k.expires_at ? fmtDate(k.expires_at) : 'Never'}
        </td>
      )}
      <td role="cell" data-label="Limits">
        <LimitsSummary k={k} />
      </td>
      <td role="cell" data-label="Actions">
        {open ? (
          <div class="actions account-row-actions">
            <button type="button" onClick={() => onEdit(k)} disabled={busy}>
              Edit limits<span class="account-sr"> of {k.name}</span>
            </button>
            {k.status !== 'expired' && (
              <button type="button" onClick={() => onToggle(k)} disabled={busy}>
                {k.is_active ? 'Deactivate' : 'Activate'}
                <span class="account-sr"> {k.name}</span>
              </button>
            )}
            <button type="button" class="danger" onClick={() => onRevoke(k)} disabled={busy}>
              Revoke<span class="account-sr"> {k.name}</span>
            </button>
          </div>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
    </tr>
  );
}

// The newest `wanted` keys of the caller (in pages of at most MAX_LIMIT): {items, total}.
async function loadKeys(wanted) {
  const items = [];
  let total = 0;
  do {
    const limit = Math.min(MAX_LIMIT, wanted - items.length);
    const page = await api(`/api/v1/api-keys${query({ limit, offset: items.length })}`);
    total = page.total;
    items.push(...page.items);
    if (page.items.length < limit) break;
  } while (items.length < wanted && items.length < total);
  return { items, total };
}

export function KeysPage() {
  const [wanted, setWanted] = useState(PAGE);
  const list = useLoad(() => loadKeys(wanted), [wanted]);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState(null); // the API's answer with the secret: shown once
  const [editing, setEditing] = useState(null);
  const [revoking, setRevoking] = useState(null);
  const [notice, setNotice] = useState('');

  const [revoke, revokeBusy, revokeError] = useAction(async (k) => {
    await api(`/api/v1/api-keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
    setNotice(`“${k.name}” is revoked: it can no longer be used.`);
    await list.reload();
  });
  const [toggle, toggleBusy, toggleError] = useAction(async (k) => {
    await api(`/api/v1/api-keys/${encodeURIComponent(k.id)}`, {
      method: 'PATCH',
      body: { is_active: !k.is_active },
    });
    setNotice(k.is_active ? `“${k.name}” is deactivated.` : `“${k.name}” is active again.`);
    await list.reload();
  });

  const items = list.data ? list.data.items : [];
  const total = list.data ? list.data.total : 0;
  const showExpires = items.some((k) => k.expires_at); // the column only when some key expires

  return (
    <section class="account">
      <PageTitle
        actions={
          <>
            <button type="button" onClick={() => list.reload()} disabled={list.loading}>
              Refresh
            </button>
            <button type="button" class="primary" onClick={() => setCreating(true)}>
              Create key
            </button>
          </>
        }
      >
        Service keys
      </PageTitle>
      <p class="muted">
        Service keys (“ai_…”) let programs call parley's API, including the OpenAI-compatible <code>/v1</code>{' '}
        routes, as you. Each key can have its own limits and budgets.
      </p>
      <Notice>{notice}</Notice>
      <ErrorMessage error={revokeError || toggleError} />
      <ErrorMessage error={list.error} />
      {list.loading && !list.data ? (
        <Loading />
      ) : list.data && items.length === 0 ? (
        <div class="account-empty" data-testid="keys-empty">
          <p>
            <strong>You have no service keys yet.</strong>
          </p>
          <p class="muted">Create one to call parley from a script, an SDK or another service.</p>
        </div>
      ) : (
        list.data && (
          <>
            <div class="table-wrap">
              <table class="account-table" role="table">
                <caption class="account-sr">Your service keys</caption>
                <thead role="rowgroup">
                  <tr role="row">
                    <th scope="col" role="columnheader">Name</th>
                    <th scope="col" role="columnheader">Key</th>
                    <th scope="col" role="columnheader">Status</th>
                    <th scope="col" role="columnheader">Created</th>
                    <th scope="col" role="columnheader">Last used</th>
                    {showExpires && (
                      <th scope="col" role="columnheader">
                        Expires
                      </th>
                    )}
                    <th scope="col" role="columnheader">Limits</th>
                    <th scope="col" role="columnheader">Actions</th>
                  </tr>
                </thead>
                <tbody role="rowgroup">
                  {items.map((k) => (
                    <KeyRow
                      key={k.id}
                      k={k}
                      showExpires={showExpires}
                      busy={revokeBusy || toggleBusy}
                      onEdit={(x) => {
                        setNotice('');
                        setEditing(x);
                      }}
                      onRevoke={(x) => setRevoking(x)}
                      onToggle={(x) => {
                        setNotice('');
                        toggle(x);
                      }}
                    />
                  ))}
                </tbody>
              </table>
            </div>
            {total > items.length && (
              <p class="actions">
                <span class="muted">
                  Showing the newest {fmtInt(items.length)} of {fmtInt(total)} keys.
                </span>
                <button type="button" onClick={() => setWanted(wanted + PAGE)} disabled={list.loading}>
                  Show more
                </button>
              </p>
            )}
          </>
        )
      )}

      <CreateDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(answer) => {
          setCreating(false);
          setNotice('');
          setCreated(answer);
          list.reload(); // the list is read again: it never holds the secret
        }}
      />
      <ShowOnceDialog created={created} onClose={() => setCreated(null)} />
      <EditDialog
        keyRecord={editing}
        onClose={() => setEditing(null)}
        onSaved={(saved) => {
          setEditing(null);
          setNotice(`The limits of “${saved.name}” are saved.`);
          list.setData((d) => d && { ...d, items: d.items.map((x) => (x.id === saved.id ? saved : x)) });
        }}
      />
      <Confirm
        open={!!revoking}
        title="Revoke this key?"
        message={
          revoking
            ? `“${revoking.name}” (${revoking.key_prefix}…) stops working at once, for good: ` +
              'a revoked key cannot be activated again.'
            : ''
        }
        confirmLabel="Revoke key"
        danger
        onAnswer={(yes) => {
          const k = revoking;
          setRevoking(null);
          if (yes && k) {
            setNotice('');
            revoke(k);
          }
        }}
      />
    </section>
  );
}
