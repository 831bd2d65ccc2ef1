// Usage: what was spent, by whom and on which model. A scope (my usage, one of my service keys,
// and for staff one user or the whole deployment) and a period (7 / 30 / 90 days); totals and
// charts from the daily rollups (…/summary), the recent calls (records, newest first, keyset
// pagination) and a CSV export of the scope's records.
//
// The scope is in the address, so it survives a reload and can be linked to:
//   #/usage (mine) · #/usage/key/<key_id> · #/usage/user/<user_id> · #/usage/all
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, errorOf, query, request } from '../api.js';
import {
  ErrorMessage,
  Field,
  Loading,
  Notice,
  PageTitle,
  fmtDate,
  fmtInt,
  useAction,
  useLoad,
  ScrollRegion,
} from '../ui.jsx';
import { drawChart, updateChart } from '../charts.js';
import './usage.css';

const PERIODS = [7, 30, 90];
const PAGE_SIZE = 25; // recent calls per page
const enc = encodeURIComponent;
const staffRole = (user) => user.role === 'admin' || user.role === 'manager';

// ---- formatting -------------------------------------------------------------------------------

const currency = { style: 'currency', currency: 'USD' };
const usd = new Intl.NumberFormat(undefined, { ...currency, maximumFractionDigits: 4 });
const usdSmall = new Intl.NumberFormat(undefined, { ...currency, maximumSignificantDigits: 3 });
const dayLabel = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const dayLong = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' });

// Dollars: cents-and-beyond for ordinary amounts, three significant digits for the tiny amounts a
// single call often costs (so that $0.0000315 does not read as $0.00).
export function fmtUsd(n) {
  if (n === null || n === undefined) return '—';
  if (n !== 0 && Math.abs(n) < 0.01) return usdSmall.format(n);
  return usd.format(n);
}

// 'YYYY-MM-DD' (a UTC day of the summaries) as "Dec 6" / "Dec 6, 2026".
const utcDay = (date) => new Date(`${date}T00:00:00Z`);
const fmtDay = (date) => dayLabel.format(utcDay(date));
const fmtDayLong = (date) => dayLong.format(utcDay(date));

// The first UTC day of a period of `days` days ending today, as the summaries count it.
function periodStart(days) {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() - (days - 1));
  return d.toISOString().slice(0, 10);
}

// ---- scopes -----------------------------------------------------------------------------------

// The scope named by the address's parameters. A user scope naming the signed-in user is "mine".
function parseScope(params, user) {
  const [kind, id] = params;
  if (kind === 'key' && id) return { kind: 'key', id };
  if (kind === 'user' && !id) return { kind: 'user', id: null }; // a user is yet to be picked
  if (kind === 'user') return id === user.id ? { kind: 'me' } : { kind: 'user', id };
  if (kind === 'all') return { kind: 'all' };
  return { kind: 'me' };
}

// The scope's records route (its summary is the same plus /summary).
function recordsPath(scope, user) {
  if (scope.kind === 'key') return `/api/v1/usage/${enc(scope.id)}`;
  if (scope.kind === 'all') return '/api/v1/usage';
  return `/api/v1/users/${enc(scope.kind === 'me' ? user.id : scope.id)}/usage`;
}

const summaryPath = (scope, user) =>
  scope.kind === 'all' ? '/api/v1/usage/summary' : `${recordsPath(scope, user)}/summary`;

// A file-name-safe word for the scope: the username, key-<prefix>, user-<name>, deployment.
function scopeSlug(scope, user, names) {
  let s = user.username;
  if (scope.kind === 'key') s = `key-${names.keyPrefix(scope.id)}`;
  else if (scope.kind === 'user') s = `user-${names.user(scope.id)}`;
  else if (scope.kind === 'all') s = 'deployment';
  return s.replace(/[^A-Za-z0-9_.-]+/g, '_');
}

// ---- the page ---------------------------------------------------------------------------------

export function UsagePage({ user, params, navigate }) {
  const staff = staffRole(user);
  const scope = parseScope(params, user);
  const [days, setDays] = useState(30);

  // Service keys: mine for the scope list; for staff everyone's, to name the keys in the records.
  const keys = useLoad(
    () => api(`/api/v1/api-keys${query({ limit: 200, all: staff ? 'true' : null })}`).then((r) => r.items),
    [staff],
  );
  // Staff: the users (first 200), to name them in deployment-wide records.
  const users = useLoad(
    () => (staff ? api('/api/v1/users?limit=200').then((r) => r.items) : Promise.resolve([])),
    [staff],
  );
  // The user a user scope shows (it may be beyond the first 200).
  const shown = useLoad(
    () =>
      staff && scope.kind === 'user' && scope.id
        ? api(`/api/v1/users/${enc(scope.id)}`)
        : Promise.resolve(null),
    [staff, scope.kind, scope.id],
  );

  const allKeys = useMemo(() => keys.data || [], [keys.data]);
  const myKeys = allKeys.filter((k) => k.user_id === user.id);
  const names = useMemo(() => {
    const keyById = new Map(allKeys.map((k) => [k.id, k]));
    const userById = new Map((users.data || []).map((u) => [u.id, u.username]));
    userById.set(user.id, user.username);
    if (shown.data) userById.set(shown.data.id, shown.data.username);
    return {
      key: (id) => {
        const k = keyById.get(id);
        return k ? `${k.name} (${k.key_prefix}…)` : `${id.slice(0, 8)}…`;
      },
      keyPrefix: (id) => keyById.get(id)?.key_prefix || id.slice(0, 8),
      user: (id) => userById.get(id) || id,
    };
  }, [allKeys, users.data, shown.data, user]);

  // Users and service keys cannot see other users or the deployment: the page refuses before
  // asking (the API would answer 404 / 403 too).
  const refused = !staff && (scope.kind === 'user' || scope.kind === 'all');
  const scopeValue = scope.kind === 'key' ? `key/${scope.id}` : scope.kind;
  const unknownKey = scope.kind === 'key' && keys.data && !myKeys.some((k) => k.id === scope.id);

  let heading = 'My usage';
  if (scope.kind === 'key') heading = `Service key ${names.key(scope.id)}`;
  else if (scope.kind === 'user') heading = scope.id ? `Usage of ${names.user(scope.id)}` : 'Usage of a user';
  else if (scope.kind === 'all') heading = 'Everyone (deployment)';

  const ready = !refused && !(scope.kind === 'user' && !scope.id);
  return (
    <section class="usage">
      <PageTitle
        actions={
          ready && (
            <ExportButton path={recordsPath(scope, user)} days={days} slug={scopeSlug(scope, user, names)} />
          )
        }
      >
        Usage
      </PageTitle>
      <div class="usage-controls">
        <Field
          as="select"
          label="Scope"
          value={refused ? '' : scopeValue}
          onChange={(e) => navigate(`usage/${e.currentTarget.value}`)}
        >
          {refused && <option value="">(not available)</option>}
          <option value="me">My usage</option>
          {myKeys.length > 0 && (
            <optgroup label="My service keys">
              {myKeys.map((k) => (
                <option key={k.id} value={`key/${k.id}`}>
                  {`${k.name} (${k.key_prefix}…)${k.status === 'active' ? '' : ` · ${k.status}`}`}
                </option>
              ))}
            </optgroup>
          )}
          {unknownKey && <option value={scopeValue}>{`Service key ${names.key(scope.id)}`}</option>}
          {staff && <option value="user">A user…</option>}
          {staff && <option value="all">Everyone (deployment)</option>}
        </Field>
        <fieldset class="usage-period">
          <legend>Period</legend>
          {PERIODS.map((n) => (
            <label key={n}>
              <input
                type="radio"
                name="usage-period"
                value={n}
                checked={days === n}
                onChange={() => setDays(n)}
              />
              {`${n} days`}
            </label>
          ))}
        </fieldset>
      </div>
      <ErrorMessage error={keys.error} />
      {staff && scope.kind === 'user' && (
        <UserPicker selected={scope.id} onPick={(u) => navigate(`usage/user/${u.id}`)} />
      )}
      {refused ? (
        <div>
          <p class="error" role="alert">
            Other users' usage and the whole deployment's are shown to administrators and managers only.
          </p>
          <p>
            <a href="#/usage">Show my usage</a>
          </p>
        </div>
      ) : ready ? (
        <UsageView
          key={`${scopeValue}/${scope.id || ''}`}
          scope={scope}
          user={user}
          days={days}
          heading={heading}
          names={names}
        />
      ) : (
        <p class="muted">Find a user above to see their usage.</p>
      )}
    </section>
  );
}

// Staff: a searchable list of users (GET /api/v1/users?search=); picking one shows their usage.
function UserPicker({ selected, onPick }) {
  const [search, setSearch] = useState('');
  const [term, setTerm] = useState('');
  // Ask once typing pauses, not on every key.
  useEffect(() => {
    const t = setTimeout(() => setTerm(search.trim()), 250);
    return () => clearTimeout(t);
  }, [search]);
  const found = useLoad(() => api(`/api/v1/users${query({ search: term, limit: 20 })}`), [term]);
  const items = found.data?.items || [];
  return (
    <div class="usage-picker">
      <Field
        label="Find a user"
        type="search"
        value={search}
        autocomplete="off"
        hint="Part of a username or e-mail address"
        onInput={(e) => setSearch(e.currentTarget.value)}
      />
      <ErrorMessage error={found.error} />
      {found.data && (
        <>
          <ul class="usage-picker-list" aria-label="Users found">
            {items.map((u) => (
              <li key={u.id}>
                <button type="button" aria-pressed={u.id === selected} onClick={() => onPick(u)}>
                  {u.username} <span class="muted">{`${u.email} · ${u.role}`}</span>
                </button>
              </li>
            ))}
          </ul>
          <p class="muted" role="status">
            {items.length === 0
              ? 'No user matches.'
              : found.data.total > items.length
                ? `Showing ${items.length} of ${found.data.total} users: type more to narrow the list.`
                : `${found.data.total} ${found.data.total === 1 ? 'user' : 'users'} found.`}
          </p>
        </>
      )}
    </div>
  );
}

// Downloads the scope's records of the period as CSV (the API's CSV form). A link cannot carry the
// access token, so the file is fetched here and handed to the browser as a Blob.
function ExportButton({ path, days, slug }) {
  const [done, setDone] = useState('');
  const [run, busy, error] = useAction(async () => {
    setDone('');
    const res = await request(`${path}${query({ format: 'csv', since: periodStart(days) })}`);
    if (!res.ok) throw await errorOf(res);
    const more = res.headers.get('X-Next-Cursor');
    const blob = await res.blob();
    const name = `usage-${slug}-${days}d.csv`;
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    setDone(
      more ? `Saved ${name}: the first 100,000 calls of the period (there are more).` : `Saved ${name}.`,
    );
  });
  return (
    <div class="usage-export">
      <button type="button" onClick={run} disabled={busy}>
        {busy ? 'Exporting…' : 'Export CSV'}
      </button>
      <ErrorMessage error={error} />
      <Notice>{done}</Notice>
    </div>
  );
}

// ---- one scope's numbers ----------------------------------------------------------------------

function UsageView({ scope, user, days, heading, names }) {
  const base = recordsPath(scope, user);
  const summary = useLoad(() => api(`${summaryPath(scope, user)}${query({ days })}`), [base, days]);
  const records = useRecords(base, days);
  const s = summary.data;

  return (
    <div class="usage-view">
      <div class="usage-view-head">
        <h2>{heading}</h2>
        <button
          type="button"
          onClick={() => {
            summary.reload();
            records.reload();
          }}
        >
          Refresh
        </button>
      </div>
      <ErrorMessage error={summary.error} />
      {summary.loading && !s && <Loading label="Loading usage…" />}
      {s && (
        <div aria-busy={summary.loading ? 'true' : 'false'}>
          <p class="muted">
            {`Last ${s.days} days: ${fmtDayLong(s.period_start.slice(0, 10))} to today (UTC). `}
            Calls show up here a few seconds after they are made.
          </p>
          <Totals s={s} />
          {s.total_requests > 0 ? <Charts s={s} /> : <p class="muted">No calls in this period.</p>}
        </div>
      )}
      {/* The same refusal (404, 403) as the summary's is said once. */}
      <RecentCalls records={records} scope={scope} names={names} hideError={!!summary.error} />
    </div>
  );
}

function Totals({ s }) {
  const item = (id, label, value, text, note) => (
    <div class="usage-total">
      <dt>{label}</dt>
      <dd>
        <data value={value} data-testid={`total-${id}`}>
          {text}
        </data>
        {note && <span class="usage-total-note">{note}</span>}
      </dd>
    </div>
  );
  return (
    <dl class="usage-totals" aria-label="Totals">
      {item(
        'requests',
        'Requests',
        s.total_requests,
        fmtInt(s.total_requests),
        s.total_errors ? `${fmtInt(s.total_errors)} failed` : null,
      )}
      {item(
        'tokens',
        'Tokens',
        s.total_tokens,
        fmtInt(s.total_tokens),
        `${fmtInt(s.total_prompt_tokens)} input · ${fmtInt(s.total_completion_tokens)} output`,
      )}
      {item('cost', 'Cost', s.total_cost_usd, fmtUsd(s.total_cost_usd))}
    </dl>
  );
}

// The largest of `rows` by `value` (the first on a tie).
const peak = (rows, value) => rows.reduce((best, r) => (value(r) > value(best) ? r : best), rows[0]);

function Charts({ s }) {
  // Specs change only with the summary, so the charts redraw only when the numbers do.
  const charts = useMemo(() => chartsOf(s), [s]);
  return (
    <div class="usage-charts">
      {charts.map((c) => (
        <ChartFigure key={c.title} {...c} />
      ))}
      <ModelTable models={s.by_model} />
    </div>
  );
}

// The four charts of a summary: {title, label (what a screen reader hears), spec, table}.
function chartsOf(s) {
  const days = s.by_day;
  const labels = days.map((d) => fmtDay(d.date));
  const range = `${fmtDayLong(days[0].date)} to ${fmtDayLong(days[days.length - 1].date)}`;
  const busiest = peak(days, (d) => d.requests);
  const costliest = peak(days, (d) => d.cost_usd);
  const models = s.by_model;
  return [
    {
      title: 'Requests per day',
      label:
        `Bar chart of requests per day, ${range}: ${fmtInt(s.total_requests)} in total; ` +
        `the busiest day was ${fmtDayLong(busiest.date)} with ${fmtInt(busiest.requests)}.`,
      spec: {
        kind: 'bar',
        labels,
        integer: true,
        format: fmtInt,
        series: [{ label: 'Requests', data: days.map((d) => d.requests) }],
      },
      table: (
        <DayTable
          title="Requests per day"
          days={days}
          columns={[
            ['Requests', (d) => fmtInt(d.requests)],
            ['Failed', (d) => fmtInt(d.errors)],
          ]}
        />
      ),
    },
    {
      title: 'Tokens per day',
      label:
        `Stacked bar chart of tokens per day, ${range}: ${fmtInt(s.total_prompt_tokens)} input and ` +
        `${fmtInt(s.total_completion_tokens)} output tokens in total.`,
      spec: {
        kind: 'bar',
        labels,
        stacked: true,
        integer: true,
        format: fmtInt,
        series: [
          { label: 'Input tokens', data: days.map((d) => d.prompt_tokens) },
          { label: 'Output tokens', data: days.map((d) => d.completion_tokens) },
        ],
      },
      table: (
        <DayTable
          title="Tokens per day"
          days={days}
          columns={[
            ['Input tokens', (d) => fmtInt(d.prompt_tokens)],
            ['Output tokens', (d) => fmtInt(d.completion_tokens)],
            ['Total', (d) => fmtInt(d.total_tokens)],
          ]}
        />
      ),
    },
    {
      title: 'Cost per day',
      label:
        `Line chart of cost per day, ${range}: ${fmtUsd(s.total_cost_usd)} in total; ` +
        `the highest was ${fmtUsd(costliest.cost_usd)} on ${fmtDayLong(costliest.date)}.`,
      spec: {
        kind: 'line',
        labels,
        format: fmtUsd,
        series: [{ label: 'Cost (USD)', data: days.map((d) => d.cost_usd) }],
      },
      table: <DayTable title="Cost per day" days={days} columns={[['Cost', (d) => fmtUsd(d.cost_usd)]]} />,
    },
    {
      // Its table is the per-model table beside it, which shows more than the chart.
      title: 'Requests per model',
      label: `Bar chart of requests per model: ${models
        .map((m) => `${m.model} ${fmtInt(m.requests)}`)
        .join(', ')}.`,
      spec: {
        kind: 'bar',
        horizontal: true,
        integer: true,
        format: fmtInt,
        labels: models.map((m) => m.model),
        series: [{ label: 'Requests', data: models.map((m) => m.requests) }],
      },
      short: true,
    },
  ];
}

// A chart on a canvas (role="img" with a summary of its data as its name) and, behind a
// disclosure, the same numbers as a table.
function ChartFigure({ title, label, spec, table, short }) {
  const canvas = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    if (chart.current) updateChart(chart.current, spec);
    else chart.current = drawChart(canvas.current, spec);
  }, [spec]);
  useEffect(
    () => () => {
      chart.current?.destroy();
      chart.current = null;
    },
    [],
  );
  return (
    <figure class="usage-chart">
      <figcaption>{title}</figcaption>
      <div class={`usage-chart-box${short ? ' usage-chart-short' : ''}`}>
        <canvas ref={canvas} role="img" aria-label={label} />
      </div>
      {table && (
        <details>
          <summary>{`${title}: data table`}</summary>
          {table}
        </details>
      )}
    </figure>
  );
}

// A table's box that scrolls sideways when the table is wider than the screen; focusable (and
// named) so that keyboard users can scroll it too.
function DayTable({ title, days, columns }) {
  return (
    <ScrollRegion label={`${title}: data table`}>
      <table class="usage-day-table">
        <thead>
          <tr>
            <th scope="col">Day (UTC)</th>
            {columns.map(([name]) => (
              <th scope="col" key={name}>
                {name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {days.map((d) => (
            <tr key={d.date}>
              <th scope="row">
                <time datetime={d.date}>{fmtDayLong(d.date)}</time>
              </th>
              {columns.map(([name, value]) => (
                <td key={name}>{value(d)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  );
}

function ModelTable({ models }) {
  return (
    <ScrollRegion label="Per model" class="usage-models">
      <table>
        <caption>Per model</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Provider</th>
            <th scope="col">Requests</th>
            <th scope="col">Failed</th>
            <th scope="col">Input tokens</th>
            <th scope="col">Output tokens</th>
            <th scope="col">Cost</th>
            <th scope="col">Avg latency</th>
          </tr>
        </thead>
        <tbody>
          {models.map((m) => (
            <tr key={`${m.provider}/${m.model}`}>
              <th scope="row">{m.model}</th>
              <td>{m.provider}</td>
              <td>{fmtInt(m.requests)}</td>
              <td>{fmtInt(m.errors)}</td>
              <td>{fmtInt(m.prompt_tokens)}</td>
              <td>{fmtInt(m.completion_tokens)}</td>
              <td>{fmtUsd(m.cost_usd)}</td>
              <td>{`${fmtInt(m.avg_latency_ms)} ms`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollRegion>
  );
}

// ---- recent calls -----------------------------------------------------------------------------

// The records of `base` since the period's first day, a page at a time (next_cursor).
function useRecords(base, days) {
  const [state, setState] = useState({ items: [], cursor: null, hasMore: false, loading: true, error: null });
  const serial = useRef(0);
  const load = async (cursor) => {
    const mine = ++serial.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const page = await api(`${base}${query({ limit: PAGE_SIZE, since: periodStart(days), cursor })}`);
      if (mine !== serial.current) return;
      setState((s) => ({
        items: cursor ? [...s.items, ...page.items] : page.items,
        cursor: page.next_cursor,
        hasMore: page.has_more,
        loading: false,
        error: null,
      }));
    } catch (error) {
      if (mine === serial.current) setState((s) => ({ ...s, loading: false, error }));
    }
  };
  useEffect(() => {
    load(null);
  }, [base, days]);
  return { ...state, reload: () => load(null), more: () => load(state.cursor) };
}

function RecentCalls({ records, scope, names, hideError }) {
  const everyone = scope.kind === 'all'; // a column naming each call's user
  const n = records.items.length;
  return (
    <section class="usage-recent" aria-labelledby="usage-recent-title">
      <h2 id="usage-recent-title">Recent calls</h2>
      {!hideError && <ErrorMessage error={records.error} />}
      {records.items.length === 0 && records.loading && <Loading label="Loading calls…" />}
      {records.items.length === 0 && !records.loading && !records.error && (
        <p class="muted">No calls in this period.</p>
      )}
      {records.items.length > 0 && (
        <ScrollRegion label="Recent calls">
          <table class="usage-calls">
            <thead>
              <tr>
                <th scope="col">Time</th>
                {everyone && <th scope="col">User</th>}
                <th scope="col">Model</th>
                <th scope="col">Endpoint</th>
                <th scope="col">Tokens (in / out)</th>
                <th scope="col">Cost</th>
                <th scope="col">Status</th>
                <th scope="col">Key</th>
              </tr>
            </thead>
            <tbody>
              {records.items.map((r) => (
                <tr key={r.id}>
                  <td>
                    <time datetime={r.created_at}>{fmtDate(r.created_at)}</time>
                  </td>
                  {everyone && <td>{names.user(r.user_id)}</td>}
                  <td>{r.model}</td>
                  <td>{`${r.endpoint}${r.streamed ? ' (stream)' : ''}`}</td>
                  <td>
                    {fmtInt(r.total_tokens)} ({fmtInt(r.prompt_tokens)} / {fmtInt(r.completion_tokens)})
                  </td>
                  <td>{fmtUsd(r.cost_usd)}</td>
                  <td class={r.status >= 400 ? 'usage-failed' : undefined}>{r.status}</td>
                  <td>{r.api_key_id ? names.key(r.api_key_id) : <span class="muted">signed in</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollRegion>
      )}
      {records.items.length > 0 && (
        <div class="actions usage-more">
          <span class="muted" role="status">
            {`Showing ${fmtInt(n)} ${n === 1 ? 'call' : 'calls'}`}
            {records.hasMore ? ', newest first.' : ' (all of this period).'}
          </span>
          {records.hasMore && (
            <button type="button" onClick={records.more} disabled={records.loading}>
              {records.loading ? 'Loading…' : 'Load more'}
            </button>
          )}
        </div>
      )}
    </section>
  );
}
