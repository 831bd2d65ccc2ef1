// The audit log (#/admin/audit, #/admin/audit/actor/<user id>, #/admin/audit/action/<action>):
// parley's security events newest first, filtered by action, acting user and a range of days, a
// page at a time ("Load more"). parley shows it to administrators and managers (docs/IDENTITY.md,
// "Audit log").
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { ErrorMessage, Field, Loading, PageTitle, fmtInt, ScrollRegion } from '../ui.jsx';
import { Cell } from './admin_users.jsx';
import './admin.css';

const PAGE_SIZE = 50;

// The actions parley records (GET /api/v1/audit's `action` filter is an exact match): those of
// docs/IDENTITY.md, plus user.limits_changed (src/services/user_service.cpp) and the provider-key
// events of docs/VAULT.md.
const ACTIONS = [
  'auth.login.succeeded',
  'auth.login.failed',
  'auth.login.limited',
  'auth.refresh.reused',
  'auth.logout',
  'user.registered',
  'user.created',
  'user.role_changed',
  'user.activated',
  'user.deactivated',
  'user.password_changed',
  'user.deleted',
  'user.limits_changed',
  'provider_key.set',
  'provider_key.deleted',
  'api_key.created',
  'api_key.activated',
  'api_key.deactivated',
  'api_key.revoked',
];

// Filters from the address: ['actor', <id>] or ['action', <name>] (in either order, both allowed).
// `from` and `to` (set in the form only) are days, 'YYYY-MM-DD' as <input type="date"> gives them,
// both included.
function filtersOf(params) {
  const f = { action: '', actorId: '', from: '', to: '' };
  for (let i = 0; i + 1 < params.length; i += 2) {
    if (params[i] === 'actor') f.actorId = params[i + 1];
    if (params[i] === 'action') f.action = params[i + 1];
  }
  return f;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
function fmtTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso ?? '—') : timeFormat.format(d);
}

// ---------------------------------------------------------------------------------------------
// Days in the browser's time zone → parley's `since` (inclusive) and `until` (exclusive).

const TIME_ZONE = new Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

// The local midnight that starts the day `day` ('YYYY-MM-DD') plus `plus` days, as a Date (invalid
// for a malformed day). setFullYear, unlike new Date(y, …), keeps years 0–99 as they are; on a day
// without a midnight (a clock change at 00:00) the day starts at the first time that exists.
function dayStart(day, plus = 0) {
  const m = /^(\d{4,6})-(\d{2})-(\d{2})$/.exec(day);
  const d = new Date(NaN);
  if (!m) return d;
  d.setTime(0);
  d.setFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + plus);
  d.setHours(0, 0, 0, 0);
  return d;
}

// The ISO UTC time of that moment, or null when the day cannot be one (e.g. a year past 275760).
function isoOrNull(date) {
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

// The query's bounds for filters {from, to}: since = the start of `from`, until = the start of the
// day after `to` (so that `to` is included).
function boundsOf({ from, to }) {
  return {
    since: from ? isoOrNull(dayStart(from)) : undefined,
    until: to ? isoOrNull(dayStart(to, 1)) : undefined,
  };
}

const fmtDay = (day) => {
  const d = dayStart(day);
  return Number.isNaN(d.getTime()) ? day : dayFormat.format(d);
};

// The range in words, for the status line: "5 Dec 2026 to 6 Dec 2026", "from 5 Dec 2026", …
function rangeText({ from, to }) {
  if (from && to) return from === to ? `on ${fmtDay(from)}` : `from ${fmtDay(from)} to ${fmtDay(to)}`;
  if (from) return `from ${fmtDay(from)} on`;
  if (to) return `up to ${fmtDay(to)}`;
  return '';
}

// Checks the date fields of the filter form (`form`: its element) and the draft's days; returns
// {from, to} messages (empty when both are fine).
function rangeErrors(form, draft) {
  const errors = {};
  const names = { from: '“From”', to: '“To”' };
  for (const key of ['from', 'to']) {
    const input = form.elements[key];
    // A partly typed date reads as '' with badInput set: say so rather than drop the bound.
    if (input?.validity?.badInput) errors[key] = `${names[key]} is not a whole date: finish it or clear it.`;
    else if (draft[key] && !isoOrNull(dayStart(draft[key], key === 'to' ? 1 : 0))) {
      errors[key] = `${names[key]} is not a date parley can search (use a year from 1 to 275759).`;
    }
  }
  if (!errors.from && !errors.to && draft.from && draft.to && dayStart(draft.from) > dayStart(draft.to)) {
    errors.to = '“To” is before “From”: choose a “To” day on or after the “From” day.';
  }
  return errors;
}

// The event's detail in words: parley writes {from, to} on user.role_changed, {role} on
// user.created / user.registered, {provider} on provider-key events; other shapes are shown as JSON.
function detailText(ev) {
  const d = ev.detail;
  if (d === null || d === undefined) return '';
  if (typeof d === 'object' && !Array.isArray(d)) {
    const keys = Object.keys(d);
    if (keys.length === 2 && 'from' in d && 'to' in d) return `${d.from} → ${d.to}`;
    if (keys.length === 1 && typeof d[keys[0]] !== 'object') return `${keys[0]}: ${d[keys[0]]}`;
  }
  return typeof d === 'string' ? d : JSON.stringify(d);
}

// Usernames for the user ids the events name: one list call, then one call per id it missed
// (null: the user no longer exists).
function useUserNames() {
  const [names, setNames] = useState({});
  const known = useRef({});
  const seeded = useRef(false);
  const resolve = async (ids) => {
    const found = {};
    if (!seeded.current) {
      seeded.current = true;
      try {
        const page = await api(`/api/v1/users${query({ limit: 200 })}`);
        for (const u of page.items) found[u.id] = u.username;
      } catch {
        // Names are a convenience: the ids stay shown.
      }
    }
    const missing = [...new Set(ids)].filter((id) => id && !(id in known.current) && !(id in found));
    await Promise.all(
      missing.map((id) =>
        api(`/api/v1/users/${encodeURIComponent(id)}`)
          .then((u) => (found[id] = u.username))
          .catch((e) => (found[id] = e.status === 404 ? null : undefined)),
      ),
    );
    for (const [id, name] of Object.entries(found)) if (name !== undefined) known.current[id] = name;
    setNames({ ...known.current });
  };
  // The id of a username (exact, ignoring case), from the names seen or a search.
  const idOf = async (username) => {
    const want = username.toLowerCase();
    for (const [id, name] of Object.entries(known.current)) if (name && name.toLowerCase() === want) return id;
    const page = await api(`/api/v1/users${query({ search: username, limit: 200 })}`);
    const u = page.items.find((x) => x.username.toLowerCase() === want);
    if (u) {
      known.current[u.id] = u.username;
      setNames({ ...known.current });
    }
    return u ? u.id : null;
  };
  return { names, resolve, idOf };
}

function UserName({ id, names }) {
  if (!id) return <span class="muted">anonymous</span>;
  const name = names[id];
  if (name) return <span title={id}>{name}</span>;
  return (
    <span>
      <code>{id}</code>
      {name === null && <span class="muted"> (deleted)</span>}
    </span>
  );
}

export function AuditPage({ params }) {
  const [filters, setFilters] = useState(() => filtersOf(params));
  // `shown`: the filters the items answer (the previous items stay shown while others load).
  const [state, setState] = useState({ items: [], total: null, shown: null, loading: true, error: null });
  const serial = useRef(0);
  const { names, resolve, idOf } = useUserNames();
  const [draft, setDraft] = useState({ action: filters.action, user: '', from: '', to: '' });
  const [filterError, setFilterError] = useState(null);
  // Messages for the date fields ({from, to}), shown under the form and tied to each field.
  const [dateErrors, setDateErrors] = useState({});

  // A change of address (#/admin/audit/actor/<id>) while the page is open applies its filters.
  const paramKey = params.join('/');
  useEffect(() => {
    const f = filtersOf(params);
    setFilters(f);
    setDraft((d) => ({ ...d, action: f.action, user: f.actorId ? '' : d.user, from: f.from, to: f.to }));
  }, [paramKey]);

  // Loads a page from `offset` (0: afresh); later pages are appended without duplicates (events
  // recorded meanwhile shift the offsets).
  const load = async (offset) => {
    const mine = ++serial.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const { since, until } = boundsOf(filters);
      const page = await api(
        `/api/v1/audit${query({
          limit: PAGE_SIZE, offset, action: filters.action, actor_user_id: filters.actorId, since, until,
        })}`,
      );
      if (mine !== serial.current) return;
      setState((s) => {
        const items = offset === 0 ? page.items : [...s.items];
        if (offset !== 0) {
          const seen = new Set(items.map((x) => x.id));
          for (const ev of page.items) if (!seen.has(ev.id)) items.push(ev);
        }
        return { items, total: page.total, shown: filters, loading: false, error: null };
      });
      const ids = [filters.actorId];
      for (const ev of page.items) {
        ids.push(ev.actor_user_id);
        if (ev.target_type === 'user') ids.push(ev.target_id);
      }
      resolve(ids.filter(Boolean));
    } catch (error) {
      if (mine === serial.current) setState((s) => ({ ...s, loading: false, error }));
    }
  };
  useEffect(() => {
    load(0);
  }, [filters.action, filters.actorId, filters.from, filters.to]);

  // The username typed in the filter form stands for that user's id.
  const apply = async (e) => {
    e.preventDefault();
    setFilterError(null);
    const errors = rangeErrors(e.currentTarget, draft);
    setDateErrors(errors);
    if (errors.from || errors.to) {
      e.currentTarget.elements[errors.from ? 'from' : 'to'].focus();
      return;
    }
    let actorId = '';
    const typed = draft.user.trim();
    if (typed) {
      try {
        actorId = await idOf(typed);
      } catch (error) {
        setFilterError(error);
        return;
      }
      if (!actorId) {
        setFilterError(new Error(`No user is named “${typed}”.`));
        return;
      }
    } else if (filters.actorId && draft.user === '' && !names[filters.actorId]) {
      actorId = filters.actorId; // filtered by an id from the address, whose name is unknown
    }
    setFilters({ action: draft.action, actorId, from: draft.from, to: draft.to });
  };
  const clear = () => {
    setFilterError(null);
    setDateErrors({});
    setDraft({ action: '', user: '', from: '', to: '' });
    setFilters({ action: '', actorId: '', from: '', to: '' });
  };

  // Show the name of a user filtered by id (from the address) in the form once it is known.
  useEffect(() => {
    const name = names[filters.actorId];
    if (filters.actorId && name && !draft.user) setDraft((d) => ({ ...d, user: name }));
  }, [filters.actorId, names[filters.actorId]]);

  const forbidden = state.error && state.error.status === 403;
  const isFiltered = (f) => Boolean(f && (f.action || f.actorId || f.from || f.to));
  const filtered = isFiltered(filters);
  const shown = state.shown;
  const shownRange = shown ? rangeText(shown) : '';
  // parley names a malformed bound (422, param since / until): mark the field it came from.
  const serverBad = state.error && state.error.status === 422 ? state.error.param : null;
  const dateField = (key, param, label, hint) => {
    const errorId = `admin-audit-${key}-error`;
    const bad = Boolean(dateErrors[key]) || serverBad === param;
    return (
      <Field
        label={label}
        type="date"
        name={key}
        id={`admin-audit-${key}`}
        hint={hint}
        aria-invalid={bad ? 'true' : undefined}
        aria-describedby={`admin-audit-${key}-hint${dateErrors[key] ? ` ${errorId}` : ''}`}
        value={draft[key]}
        onInput={(e) => setDraft({ ...draft, [key]: e.currentTarget.value })}
      />
    );
  };
  return (
    <section class="admin-audit">
      <PageTitle
        actions={
          !forbidden && (
            <button type="button" onClick={() => load(0)} disabled={state.loading}>
              Refresh
            </button>
          )
        }
      >
        Audit log
      </PageTitle>
      {forbidden ? (
        <>
          <p class="admin-readonly">parley does not show the audit log to your account.</p>
          <ErrorMessage error={state.error} />
        </>
      ) : (
        <>
          <p class="muted">Security events (sign-ins, account and key changes), newest first.</p>
          {/* noValidate: the date fields are checked by rangeErrors, with messages on the page. */}
          <form class="admin-filters" aria-label="Filter events" noValidate onSubmit={apply}>
            <Field
              label="Action"
              as="select"
              name="action"
              value={draft.action}
              onChange={(e) => setDraft({ ...draft, action: e.currentTarget.value })}
            >
              <option value="">All actions</option>
              {ACTIONS.map((a) => (
                <option value={a} key={a}>
                  {a}
                </option>
              ))}
            </Field>
            <Field
              label="Acting user"
              name="user"
              autocomplete="off"
              placeholder="any user"
              hint="A username, exactly"
              value={draft.user}
              onInput={(e) => setDraft({ ...draft, user: e.currentTarget.value })}
            />
            {dateField('from', 'since', 'From', `From the start of the day (${TIME_ZONE} time)`)}
            {dateField('to', 'until', 'To', 'To the end of the day, included')}
            <div class="actions">
              <button type="submit" class="primary">
                Apply filters
              </button>
              {filtered && (
                <button type="button" onClick={clear}>
                  Clear filters
                </button>
              )}
            </div>
          </form>
          <ErrorMessage error={dateErrors.from && new Error(dateErrors.from)} id="admin-audit-from-error" />
          <ErrorMessage error={dateErrors.to && new Error(dateErrors.to)} id="admin-audit-to-error" />
          <ErrorMessage error={filterError} />
          <ErrorMessage error={state.error} />
          {state.total !== null && (
            <p class="muted" aria-live="polite">
              {state.total === 0
                ? isFiltered(shown)
                  ? `No events match the filters${shownRange ? ` (${shownRange})` : ''}.`
                  : 'No events yet.'
                : `Showing ${fmtInt(state.items.length)} of ${fmtInt(state.total)} events` +
                  `${isFiltered(shown) ? ' matching the filters' : ''}${shownRange ? ` (${shownRange})` : ''}.`}
            </p>
          )}
          {state.items.length > 0 && (
            // Focusable and named, so that a keyboard can scroll it sideways on a narrow screen.
            <ScrollRegion label="Audit events">
              <table class="admin-table admin-stack admin-audit-table">
                <caption class="admin-sr">Audit events, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Actor</th>
                    <th scope="col">Action</th>
                    <th scope="col">Target</th>
                    <th scope="col">Client address</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {state.items.map((ev) => (
                    <tr key={ev.id} data-action={ev.action}>
                      <Cell label="Time">
                        <time dateTime={ev.created_at}>{fmtTime(ev.created_at)}</time>
                      </Cell>
                      <Cell label="Actor">
                        <UserName id={ev.actor_user_id} names={names} />
                      </Cell>
                      <Cell label="Action">
                        <code>{ev.action}</code>
                      </Cell>
                      <Cell label="Target">
                        {ev.target_type === 'user' ? (
                          <UserName id={ev.target_id} names={names} />
                        ) : ev.target_id ? (
                          <span>
                            {ev.target_type === 'api_key' ? 'service key ' : `${ev.target_type ?? ''} `}
                            <code>{ev.target_id}</code>
                          </span>
                        ) : (
                          <span class="muted">—</span>
                        )}
                      </Cell>
                      <Cell label="Client address">
                        {ev.ip ? <code>{ev.ip}</code> : <span class="muted">—</span>}
                      </Cell>
                      <Cell label="Details" class="admin-detail">
                        {detailText(ev)}
                        {ev.request_id && (
                          <small class="muted admin-request">
                            <span class="admin-sr">request </span>
                            <code>{ev.request_id}</code>
                          </small>
                        )}
                      </Cell>
                    </tr>
                  ))}
                </tbody>
              </table>
            </ScrollRegion>
          )}
          {state.loading && <Loading label="Loading events…" />}
          {state.total !== null && state.items.length < state.total && (
            <p>
              <button type="button" onClick={() => load(state.items.length)} disabled={state.loading}>
                Load more events
              </button>
            </p>
          )}
        </>
      )}
    </section>
  );
}
