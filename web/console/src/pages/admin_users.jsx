// Users (#/admin/users) and one user (#/admin/users/<id>). Admins create accounts, change roles,
// activate, deactivate and delete them, and set each user's limits and budgets; managers read all
// of it. parley decides who may do what (docs/IDENTITY.md): this page only leaves out the controls
// it would refuse, and shows its answer when it refuses anyway.
import { useRef, useState } from 'preact/hooks';
import { api, query } from '../api.js';
import {
  Confirm,
  Dialog,
  ErrorMessage,
  Field,
  Loading,
  Notice,
  PageTitle,
  fmtCost,
  fmtDate,
  fmtInt,
  useAction,
  useLoad,
  ScrollRegion,
} from '../ui.jsx';
import './admin.css';

const PAGE_SIZE = 25;
const ROLES = ['user', 'manager', 'admin'];
const ROLE_LABEL = { user: 'User', manager: 'Manager', admin: 'Administrator' };

const usersPath = (id) => `/api/v1/users/${encodeURIComponent(id)}`;
// parley shows the audit log to administrators and managers (docs/IDENTITY.md).
const readsAudit = (me) => me.role === 'admin' || me.role === 'manager';

export function UsersPage({ user, params, navigate }) {
  return params[0] ? (
    <UserDetail me={user} id={params[0]} navigate={navigate} />
  ) : (
    <UserList me={user} />
  );
}

// ---------------------------------------------------------------------------------------------
// Confirmation: ask({title, message, confirmLabel, danger}) resolves true or false; `dialog` is
// the element to render once on the page.

function useConfirm() {
  const [question, setQuestion] = useState(null);
  const resolver = useRef(null);
  const ask = (q) =>
    new Promise((resolve) => {
      resolver.current = resolve;
      setQuestion(q);
    });
  const answer = (yes) => {
    setQuestion(null);
    resolver.current?.(yes);
    resolver.current = null;
  };
  const dialog = (
    <Confirm
      open={question !== null}
      title={question?.title ?? ''}
      message={question?.message ?? ''}
      confirmLabel={question?.confirmLabel}
      danger={question?.danger}
      onAnswer={answer}
    />
  );
  return [ask, dialog];
}

function ReadOnlyNote({ me }) {
  if (me.role === 'admin') return null;
  return (
    <p class="admin-readonly" id="admin-readonly">
      You are signed in as a manager: you can read every account and its limits, but only an
      administrator can create, change or delete them.
    </p>
  );
}

// A table cell that names its column (data-label): at phone width the admin tables stack each row
// as a card, and admin.css shows the label beside the content (one wrapper, so it stays one item).
export function Cell({ label, rowHeader = false, class: cls, children }) {
  const content = <div class="admin-cell">{children}</div>;
  return rowHeader ? (
    <th scope="row" data-label={label} class={cls}>
      {content}
    </th>
  ) : (
    <td data-label={label} class={cls}>
      {content}
    </td>
  );
}

function StatusBadge({ active }) {
  return (
    <span class={`admin-badge ${active ? 'admin-badge-on' : 'admin-badge-off'}`}>{active ? 'Active' : 'Inactive'}</span>
  );
}

// ---------------------------------------------------------------------------------------------
// The admin's controls for one account: role, active state, deletion. `report` receives
// {notice} or {error}; `onChanged(user)` the updated record; `onDeleted()` after a deletion.

function useUserActions({ ask, report, onChanged, onDeleted }) {
  const [run, busy] = useAction(async (fn) => {
    try {
      await fn();
    } catch (error) {
      report({ error });
    }
  });

  const setRole = (u, role) =>
    run(async () => {
      const updated = await api(usersPath(u.id), { method: 'PATCH', body: { role } });
      onChanged(updated);
      report({ notice: `${updated.username} is now ${ROLE_LABEL[updated.role].toLowerCase()}.` });
    });

  const setActive = (u, active) =>
    run(async () => {
      const yes = await ask(
        active
          ? {
              title: `Activate ${u.username}?`,
              message:
                `${u.username} will be able to sign in again and their service keys work again. ` +
                'Sessions ended by the deactivation stay ended.',
              confirmLabel: 'Activate',
            }
          : {
              title: `Deactivate ${u.username}?`,
              message:
                `${u.username} is signed out everywhere and cannot sign in, and their service keys stop ` +
                'working, until an administrator activates the account again. Nothing is deleted.',
              confirmLabel: 'Deactivate',
              danger: true,
            },
      );
      if (!yes) return;
      const updated = await api(usersPath(u.id), { method: 'PATCH', body: { is_active: active } });
      onChanged(updated);
      report({ notice: `${updated.username} is ${active ? 'active again' : 'deactivated'}.` });
    });

  const remove = (u) =>
    run(async () => {
      const yes = await ask({
        title: `Delete ${u.username}?`,
        message:
          `This deletes ${u.username}'s account and everything they own: conversations, preferences, ` +
          'service keys, their provider key and sessions. Audit events that name them are kept. ' +
          'This cannot be undone.',
        confirmLabel: 'Delete user',
        danger: true,
      });
      if (!yes) return;
      await api(usersPath(u.id), { method: 'DELETE' });
      report({ notice: `${u.username} was deleted.` });
      onDeleted(u);
    });

  return { setRole, setActive, remove, busy };
}

function RoleSelect({ me, u, actions, id }) {
  if (me.role !== 'admin' || me.id === u.id) return <span>{ROLE_LABEL[u.role] ?? u.role}</span>;
  return (
    <select
      id={id}
      class="admin-role"
      aria-label={id ? undefined : `Role of ${u.username}`}
      value={u.role}
      disabled={actions.busy}
      onChange={(e) => {
        const role = e.currentTarget.value;
        e.currentTarget.value = u.role; // shows the new role once parley has saved it
        actions.setRole(u, role);
      }}
    >
      {ROLES.map((r) => (
        <option value={r} key={r}>
          {ROLE_LABEL[r]}
        </option>
      ))}
    </select>
  );
}

function AccountButtons({ me, u, actions }) {
  if (me.role !== 'admin') return null;
  if (me.id === u.id) {
    return <span class="muted admin-self">Your own account: another administrator can change it.</span>;
  }
  return (
    <div class="actions admin-row-actions">
      <button
        type="button"
        aria-label={`${u.is_active ? 'Deactivate' : 'Activate'} ${u.username}`}
        disabled={actions.busy}
        onClick={() => actions.setActive(u, !u.is_active)}
      >
        {u.is_active ? 'Deactivate' : 'Activate'}
      </button>
      <button
        type="button"
        class="danger"
        aria-label={`Delete ${u.username}`}
        disabled={actions.busy}
        onClick={() => actions.remove(u)}
      >
        Delete
      </button>
    </div>
  );
}

// ---------------------------------------------------------------------------------------------
// The list: search, pages of PAGE_SIZE, and the admin's controls on each row.

function UserList({ me }) {
  const [draft, setDraft] = useState('');
  const [search, setSearch] = useState('');
  const [offset, setOffset] = useState(0);
  const [creating, setCreating] = useState(false);
  const [result, setResult] = useState({ notice: null, error: null });
  const [ask, confirmDialog] = useConfirm();
  // Each page remembers the search it answers (the previous page stays shown while the next loads).
  const list = useLoad(
    () => api(`/api/v1/users${query({ search, limit: PAGE_SIZE, offset })}`).then((page) => ({ ...page, search })),
    [search, offset],
  );
  const isAdmin = me.role === 'admin';

  const report = ({ notice = null, error = null }) => setResult({ notice, error });
  const actions = useUserActions({
    ask,
    report,
    onChanged: (updated) =>
      list.setData((d) => d && { ...d, items: d.items.map((x) => (x.id === updated.id ? updated : x)) }),
    onDeleted: () => list.reload(),
  });

  const data = list.data;
  const first = data && data.total ? data.offset + 1 : 0;
  const last = data ? data.offset + data.items.length : 0;
  return (
    <section class="admin-users">
      <PageTitle
        actions={
          isAdmin && (
            <button type="button" class="primary" onClick={() => setCreating(true)}>
              Create user
            </button>
          )
        }
      >
        Users
      </PageTitle>
      <ReadOnlyNote me={me} />
      <form
        class="admin-search"
        role="search"
        aria-label="Users"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setSearch(draft.trim());
        }}
      >
        <Field
          label="Search users"
          type="search"
          name="search"
          maxLength={254}
          hint="Part of a username or e-mail address"
          value={draft}
          onInput={(e) => setDraft(e.currentTarget.value)}
        />
        <div class="actions">
          <button type="submit">Search</button>
          {search && (
            <button
              type="button"
              onClick={() => {
                setDraft('');
                setSearch('');
                setOffset(0);
              }}
            >
              Show all
            </button>
          )}
        </div>
      </form>
      <Notice>{result.notice}</Notice>
      <ErrorMessage error={result.error} />
      <ErrorMessage error={list.error} />
      {list.loading && !data && <Loading label="Loading users…" />}
      {data && (
        <>
          <p class="muted" aria-live="polite">
            {data.total === 0
              ? data.search
                ? `No user matches “${data.search}”.`
                : 'No users.'
              : `Users ${first}–${last} of ${fmtInt(data.total)}` +
                (data.search ? ` matching “${data.search}”` : '')}
          </p>
          {data.items.length > 0 && (
            <ScrollRegion label="Users">
              <table class="admin-table admin-stack">
                <caption class="admin-sr">Users</caption>
                <thead>
                  <tr>
                    <th scope="col">Username</th>
                    <th scope="col">Email</th>
                    <th scope="col">Role</th>
                    <th scope="col">Status</th>
                    <th scope="col">Created</th>
                    {isAdmin && <th scope="col">Actions</th>}
                  </tr>
                </thead>
                <tbody>
                  {data.items.map((u) => (
                    <tr key={u.id} data-user-id={u.id}>
                      <Cell label="Username" rowHeader>
                        <a href={`#/admin/users/${encodeURIComponent(u.id)}`}>{u.username}</a>
                        {u.id === me.id && <span class="muted"> (you)</span>}
                      </Cell>
                      <Cell label="Email">{u.email}</Cell>
                      <Cell label="Role">
                        <RoleSelect me={me} u={u} actions={actions} />
                      </Cell>
                      <Cell label="Status">
                        <StatusBadge active={u.is_active} />
                      </Cell>
                      <Cell label="Created">
                        <time dateTime={u.created_at}>{fmtDate(u.created_at)}</time>
                      </Cell>
                      {isAdmin && (
                        <Cell label="Actions">
                          <AccountButtons me={me} u={u} actions={actions} />
                        </Cell>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </ScrollRegion>
          )}
          {data.total > PAGE_SIZE && (
            <nav class="actions admin-pager" aria-label="Pages of users">
              <button
                type="button"
                disabled={offset === 0 || list.loading}
                onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))}
              >
                Previous page
              </button>
              <button
                type="button"
                disabled={last >= data.total || list.loading}
                onClick={() => setOffset(offset + PAGE_SIZE)}
              >
                Next page
              </button>
            </nav>
          )}
        </>
      )}
      {isAdmin && (
        <Dialog open={creating} title="Create a user" onClose={() => setCreating(false)}>
          <CreateUserForm
            onCancel={() => setCreating(false)}
            onCreated={(u) => {
              setCreating(false);
              report({ notice: `Created ${u.username} (${ROLE_LABEL[u.role].toLowerCase()}).` });
              list.reload();
            }}
          />
        </Dialog>
      )}
      {confirmDialog}
    </section>
  );
}

// The create dialog's form (mounted afresh each time the dialog opens, so it starts empty).
function CreateUserForm({ onCancel, onCreated }) {
  const [form, setForm] = useState({
    username: '', email: '', password: '', phone_number: '', role: 'user', is_active: true,
  });
  const [submit, busy, error] = useAction(async () => {
    const body = { ...form, username: form.username.trim(), email: form.email.trim() };
    if (!body.phone_number.trim()) delete body.phone_number;
    else body.phone_number = body.phone_number.trim();
    onCreated(await api('/api/v1/users', { method: 'POST', body }));
  });
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const invalid = (k) => (error && error.param === k ? 'true' : undefined);
  return (
    <form
      class="admin-form"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <Field
        label="Username"
        name="username"
        autocomplete="off"
        required
        minLength={3}
        maxLength={32}
        pattern="[A-Za-z0-9_.\-]{3,32}"
        hint="3–32 letters, digits, dots, dashes or underscores"
        aria-invalid={invalid('username')}
        value={form.username}
        onInput={set('username')}
      />
      <Field
        label="Email"
        name="email"
        type="email"
        autocomplete="off"
        required
        aria-invalid={invalid('email')}
        value={form.email}
        onInput={set('email')}
      />
      <Field
        label="Password"
        name="password"
        type="password"
        autocomplete="new-password"
        required
        minLength={8}
        hint="At least 8 characters; tell the user through a safe channel"
        aria-invalid={invalid('password')}
        value={form.password}
        onInput={set('password')}
      />
      <Field
        label="Phone number (optional)"
        name="phone_number"
        type="tel"
        autocomplete="off"
        hint="International form, e.g. +14155550123"
        aria-invalid={invalid('phone_number')}
        value={form.phone_number}
        onInput={set('phone_number')}
      />
      <Field label="Role" as="select" name="role" value={form.role} onChange={set('role')}>
        {ROLES.map((r) => (
          <option value={r} key={r}>
            {ROLE_LABEL[r]}
          </option>
        ))}
      </Field>
      <div class="field admin-check">
        <label>
          <input
            type="checkbox"
            checked={form.is_active}
            onChange={(e) => setForm({ ...form, is_active: e.currentTarget.checked })}
          />{' '}
          Active (can sign in)
        </label>
      </div>
      <ErrorMessage error={error} />
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create user'}
        </button>
      </div>
    </form>
  );
}

// ---------------------------------------------------------------------------------------------
// One user: the account, the admin's controls, and the limits.

function UserDetail({ me, id, navigate }) {
  const [result, setResult] = useState({ notice: null, error: null });
  const [ask, confirmDialog] = useConfirm();
  const account = useLoad(() => api(usersPath(id)), [id]);
  // The account record has no last sign-in time; the audit log (admins and managers) does.
  const lastSignIn = useLoad(
    () =>
      readsAudit(me)
        ? api(`/api/v1/audit${query({ actor_user_id: id, action: 'auth.login.succeeded', limit: 1 })}`).then(
            (r) => r.items[0]?.created_at ?? null,
          )
        : Promise.resolve(undefined),
    [id],
  );
  const report = ({ notice = null, error = null }) => setResult({ notice, error });
  const actions = useUserActions({
    ask,
    report,
    onChanged: (updated) => account.setData(updated),
    onDeleted: () => navigate('admin/users'),
  });

  const u = account.data;
  return (
    <section class="admin-user">
      <p class="admin-back">
        <a href="#/admin/users">← All users</a>
      </p>
      <PageTitle>{u ? u.username : 'User'}</PageTitle>
      <ReadOnlyNote me={me} />
      <Notice>{result.notice}</Notice>
      <ErrorMessage error={result.error} />
      <ErrorMessage error={account.error} />
      {account.loading && !u && <Loading label="Loading the account…" />}
      {u && (
        <>
          <dl class="admin-dl">
            <dt>Email</dt>
            <dd>{u.email}</dd>
            <dt>Phone number</dt>
            <dd>{u.phone_number || '—'}</dd>
            <dt>{me.role === 'admin' && me.id !== u.id ? <label for="admin-user-role">Role</label> : 'Role'}</dt>
            <dd>
              <RoleSelect me={me} u={u} actions={actions} id="admin-user-role" />
            </dd>
            <dt>Status</dt>
            <dd>
              <StatusBadge active={u.is_active} />
            </dd>
            <dt>Created</dt>
            <dd>{fmtDate(u.created_at)}</dd>
            <dt>Last changed</dt>
            <dd>{fmtDate(u.updated_at)}</dd>
            {readsAudit(me) && (
              <>
                <dt>Last sign-in</dt>
                <dd data-testid="last-sign-in">
                  {lastSignIn.loading
                    ? '…'
                    : lastSignIn.error
                      ? 'unknown'
                      : lastSignIn.data
                        ? fmtDate(lastSignIn.data)
                        : 'never'}
                </dd>
              </>
            )}
            <dt>Id</dt>
            <dd>
              <code>{u.id}</code>
            </dd>
          </dl>
          <AccountButtons me={me} u={u} actions={actions} />
          {readsAudit(me) && (
            <p>
              <a href={`#/admin/audit/actor/${encodeURIComponent(u.id)}`}>Audit events by {u.username}</a>
            </p>
          )}
          <Limits me={me} u={u} />
        </>
      )}
      {confirmDialog}
    </section>
  );
}

// ---------------------------------------------------------------------------------------------
// Limits and budgets (docs/LIMITS.md): GET shows the settings and what is in use now; an admin
// replaces them with PUT (an empty field: no limit).

const LIMIT_FIELDS = [
  { key: 'rate_limit_per_minute', label: 'Requests per minute', step: '1', fmt: fmtInt },
  { key: 'tokens_per_minute', label: 'Tokens per minute', step: '1', fmt: fmtInt },
  { key: 'token_budget', label: 'Token budget per period', step: '1', fmt: fmtInt },
  { key: 'spend_budget_usd', label: 'Spend budget per period (USD)', step: '0.01', fmt: fmtCost },
];
const PERIODS = { day: 'Day (UTC)', month: 'Calendar month (UTC)', total: 'Total (never resets)' };

// A limit's value in words: null and 0 both mean none for a user.
const limitText = (v, fmt) => (v === null || v === undefined || v === 0 ? 'no limit' : fmt(v));

function toForm(limits) {
  const f = { budget_period: limits.budget_period || 'month' };
  for (const { key } of LIMIT_FIELDS) f[key] = limits[key] === null || limits[key] === undefined ? '' : `${limits[key]}`;
  return f;
}

function Limits({ me, u }) {
  const limits = useLoad(() => api(`${usersPath(u.id)}/limits`), [u.id]);
  const [form, setForm] = useState(null);
  const [saved, setSaved] = useState(null);
  const [save, busy, error] = useAction(async () => {
    const body = { budget_period: form.budget_period };
    for (const { key } of LIMIT_FIELDS) {
      const v = form[key].trim();
      body[key] = v === '' ? null : Number(v);
    }
    const out = await api(`${usersPath(u.id)}/limits`, { method: 'PUT', body });
    setSaved(`Limits of ${u.username} saved.`);
    // Show the saved settings at once; the reload brings what is in use under them.
    limits.setData((d) => ({ ...d, ...out }));
    setForm(null);
    limits.reload();
  });
  const data = limits.data;
  const current = form ?? (data ? toForm(data) : null);
  const isAdmin = me.role === 'admin';
  return (
    <section class="admin-limits" aria-labelledby="admin-limits-title">
      <h2 id="admin-limits-title">Limits and budgets</h2>
      <p class="muted">
        Apply to all of {u.username}'s calls to AI routes together (their service keys and console), on top of each key's
        own limits. An empty field means no limit.
      </p>
      <ErrorMessage error={limits.error} />
      {limits.loading && !data && <Loading label="Loading limits…" />}
      {data && <InUse limits={data} onRefresh={() => limits.reload()} refreshing={limits.loading} />}
      {data && isAdmin && current && (
        <form
          class="admin-form admin-limits-form"
          aria-label={`Limits of ${u.username}`}
          onSubmit={(e) => {
            e.preventDefault();
            setSaved(null);
            save();
          }}
        >
          <div class="admin-limits-grid">
            {LIMIT_FIELDS.map(({ key, label, step }) => (
              <Field
                key={key}
                label={label}
                name={key}
                type="number"
                min="0"
                step={step}
                inputMode={step === '1' ? 'numeric' : 'decimal'}
                placeholder="no limit"
                aria-invalid={error && error.param === key ? 'true' : undefined}
                value={current[key]}
                onInput={(e) => setForm({ ...current, [key]: e.currentTarget.value })}
              />
            ))}
            <Field
              label="Budget period"
              as="select"
              name="budget_period"
              value={current.budget_period}
              onChange={(e) => setForm({ ...current, budget_period: e.currentTarget.value })}
            >
              {Object.entries(PERIODS).map(([k, v]) => (
                <option value={k} key={k}>
                  {v}
                </option>
              ))}
            </Field>
          </div>
          <ErrorMessage error={error} />
          <Notice>{saved}</Notice>
          <div class="actions">
            <button type="submit" class="primary" disabled={busy}>
              {busy ? 'Saving…' : 'Save limits'}
            </button>
            {form && (
              <button type="button" onClick={() => setForm(null)} disabled={busy}>
                Undo changes
              </button>
            )}
          </div>
        </form>
      )}
    </section>
  );
}

// The settings beside what is used now: the last minute's requests and tokens, the period's budget use.
function InUse({ limits, onRefresh, refreshing }) {
  const now = limits.in_use || null;
  const rows = [
    ['Requests per minute', limits.rate_limit_per_minute, now && fmtInt(now.requests_last_minute), fmtInt],
    ['Tokens per minute', limits.tokens_per_minute, now && fmtInt(now.tokens_last_minute), fmtInt],
    // The budget figures exist only while a budget is set.
    ['Token budget', limits.token_budget, now?.budget_tokens_used != null ? fmtInt(now.budget_tokens_used) : null, fmtInt],
    ['Spend budget', limits.spend_budget_usd, now?.budget_spend_usd != null ? fmtCost(now.budget_spend_usd) : null, fmtCost],
  ];
  return (
    <div class="admin-inuse">
      <ScrollRegion label="Limits in use">
        <table>
          <caption>
            In use now
            {now && now.period_start && (
              <span class="muted">
                {' '}
                (budget period from {fmtDate(now.period_start)}
                {now.period_end ? ` to ${fmtDate(now.period_end)}` : ', never resets'})
              </span>
            )}
          </caption>
          <thead>
            <tr>
              <th scope="col">Limit</th>
              <th scope="col">Setting</th>
              <th scope="col">Used</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([label, value, used, fmt]) => (
              <tr key={label}>
                <th scope="row">{label}</th>
                <td>
                  {limitText(value, fmt)}
                  {label.endsWith('budget') && value ? ` per ${limits.budget_period}` : ''}
                </td>
                <td>{used ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </ScrollRegion>
      <div class="actions">
        <button type="button" onClick={onRefresh} disabled={refreshing}>
          Refresh use
        </button>
        {now && now.window_resets_in_ms > 0 && (
          <span class="muted">
            The oldest call of the last minute leaves the window in {Math.ceil(now.window_resets_in_ms / 1000)} s.
          </span>
        )}
      </div>
    </div>
  );
}
