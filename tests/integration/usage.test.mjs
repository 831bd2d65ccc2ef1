// Usage read routes (docs/LIMITS.md "Usage") through the real binary and parley-mock: calls made
// with a service key and with an access token, on /v1/chat/completions and /api/v1/chat, read back
// as records (newest first, paginated with a cursor), summaries (totals, per day, per model),
// per key, per user and deployment-wide, as JSON and CSV; who may read what; bad query parameters.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startStack, adminToken, createServiceKey, json, expectErrorEnvelope, BACKEND, sleep } from './harness.mjs';

// RFC 4180: quoted fields with doubled quotes, CRLF line ends.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\r' && text[i + 1] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i++; } else field += c;
  }
  assert.equal(field, '', 'the CSV ends with a line break');
  assert.equal(row.length, 0);
  return rows;
}

const today = () => new Date().toISOString().slice(0, 10);

describe(`usage read routes (${BACKEND})`, () => {
  let stack; let url; let admin;
  const people = {}; // name → { id, token }
  let aliceKey; // { id, key }
  const calls = { key: [], aliceJwt: [], bob: [] }; // the usage each answer reported

  const get = async (route, token, headers = {}) => {
    const res = await fetch(`${url}${route}`, { headers: { Authorization: `Bearer ${token}`, ...headers } });
    return res;
  };
  const getJson = async (route, token, status = 200) => {
    const res = await get(route, token);
    const body = await json(res);
    assert.equal(res.status, status, `${route}: ${JSON.stringify(body)}`);
    return body;
  };
  const post = (route, auth, body) => fetch(`${url}${route}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${auth}` }, body: JSON.stringify(body),
  });

  async function makeUser(name, role) {
    const password = `pw-${name}-long-enough`;
    const res = await post('/api/v1/users', admin, { username: name, email: `${name}@example.com`, password, role });
    const user = await json(res);
    assert.equal(res.status, 201, JSON.stringify(user));
    const login = await fetch(`${url}/api/v1/auth/token`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: name, password }),
    });
    assert.equal(login.status, 200);
    return { id: user.id, token: (await login.json()).access_token };
  }

  // Polls a records route until it holds `count` records (usage is written about every 250 ms).
  async function records(route, token, count) {
    let body;
    for (let i = 0; i < 100; i++) {
      body = await getJson(`${route}${route.includes('?') ? '&' : '?'}limit=500`, token);
      if (body.items.length >= count) break;
      await sleep(100);
    }
    assert.equal(body.items.length, count, `${route}: ${body.items.length} records`);
    return body;
  }

  const sum = (list, field) => list.reduce((a, u) => a + u[field], 0);

  before(async () => {
    stack = await startStack();
    url = stack.url;
    admin = await adminToken(url, 'usage_admin');
    people.admin = { token: admin };
    people.alice = await makeUser('alice', 'user');
    people.bob = await makeUser('bob', 'user');
    people.manager = await makeUser('mona', 'manager');
    aliceKey = await createServiceKey(url, people.alice.token, 'alice-usage');

    // Alice's key on the gateway: five completions of different lengths and one stream.
    for (let i = 1; i <= 5; i++) {
      const res = await post('/v1/chat/completions', aliceKey.key, {
        model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'word '.repeat(i).trim() }],
      });
      assert.equal(res.status, 200);
      calls.key.push((await res.json()).usage);
    }
    const streamed = await post('/v1/chat/completions', aliceKey.key, {
      model: 'mock-large', stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream these four words' }],
    });
    const events = (await streamed.text()).split('\n\n').filter((b) => b.startsWith('data: {')).map((b) => JSON.parse(b.slice(6)));
    calls.key.push(events.at(-1).usage);
    // Alice with her access token on parley's own chat; Bob once.
    for (const content of ['hello there', 'and hello again you']) {
      const res = await post('/api/v1/chat', people.alice.token, { model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
      assert.equal(res.status, 200);
      calls.aliceJwt.push((await res.json()).usage);
    }
    const res = await post('/api/v1/chat', people.bob.token, { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'bob here' }] });
    assert.equal(res.status, 200);
    calls.bob.push((await res.json()).usage);
    for (const u of [...calls.key, ...calls.aliceJwt, ...calls.bob]) assert.ok(u.total_tokens > 0);
  });
  after(async () => { await stack.stop(); });

  test('a key\'s records: every call, newest first, with its tokens', async () => {
    const body = await records(`/api/v1/usage/${aliceKey.id}`, people.alice.token, 6);
    assert.equal(body.has_more, false);
    assert.equal(body.next_cursor, null);
    assert.equal(body.limit, 500);
    for (let i = 1; i < body.items.length; i++) {
      const [a, b] = [body.items[i - 1], body.items[i]];
      assert.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id), 'newest first');
    }
    for (const r of body.items) {
      assert.equal(r.api_key_id, aliceKey.id);
      assert.equal(r.user_id, people.alice.id);
      assert.equal(r.provider, 'mock');
      assert.equal(r.endpoint, 'chat.completions');
      assert.equal(r.status, 200);
      assert.match(r.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(typeof r.latency_ms, 'number');
      assert.equal(typeof r.cost_usd, 'number');
      assert.equal(r.total_tokens, r.prompt_tokens + r.completion_tokens);
    }
    assert.equal(body.items[0].streamed, true, 'the stream was the last call');
    assert.equal(body.items[0].model, 'mock-large');
    assert.equal(body.items.filter((r) => r.streamed).length, 1);
    for (const f of ['prompt_tokens', 'completion_tokens', 'total_tokens']) assert.equal(sum(body.items, f), sum(calls.key, f), f);
    // The oldest record is the first call: one word.
    assert.equal(body.items.at(-1).prompt_tokens, calls.key[0].prompt_tokens);
  });

  test('pages follow the cursor to the end without gaps or repeats', async () => {
    const all = (await getJson(`/api/v1/usage/${aliceKey.id}?limit=500`, people.alice.token)).items.map((r) => r.id);
    const seen = [];
    let cursor = null;
    let pages = 0;
    do {
      const page = await getJson(`/api/v1/usage/${aliceKey.id}?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, people.alice.token);
      pages++;
      assert.equal(page.limit, 4);
      seen.push(...page.items.map((r) => r.id));
      assert.equal(page.has_more, page.next_cursor !== null);
      cursor = page.next_cursor;
    } while (cursor);
    assert.equal(pages, 2);
    assert.deepEqual(seen, all);
  });

  test('since and until bound the records', async () => {
    const future = await getJson(`/api/v1/usage/${aliceKey.id}?since=2999-01-01T00:00:00Z`, people.alice.token);
    assert.equal(future.items.length, 0);
    const past = await getJson(`/api/v1/usage/${aliceKey.id}?until=2000-01-01`, people.alice.token);
    assert.equal(past.items.length, 0);
    const all = await getJson(`/api/v1/usage/${aliceKey.id}?since=2000-01-01&until=2999-01-01T00:00:00.000Z`, people.alice.token);
    assert.equal(all.items.length, 6);
    const newest = all.items[0].created_at;
    const upToNewest = await getJson(`/api/v1/usage/${aliceKey.id}?until=${encodeURIComponent(newest)}`, people.alice.token);
    assert.ok(upToNewest.items.every((r) => r.created_at < newest));
  });

  test('a key\'s summary: seed 003\'s totals, per day and per model, equal to the calls made', async () => {
    const s = await getJson(`/api/v1/usage/${aliceKey.id}/summary`, people.alice.token);
    assert.equal(s.total_requests, 6);
    assert.equal(s.total_prompt_tokens, sum(calls.key, 'prompt_tokens'));
    assert.equal(s.total_completion_tokens, sum(calls.key, 'completion_tokens'));
    assert.equal(s.total_tokens, sum(calls.key, 'total_tokens'));
    assert.equal(s.total_errors, 0);
    assert.equal(typeof s.total_cost_usd, 'number');
    assert.equal(s.days, 30);
    assert.equal(s.api_key_id, aliceKey.id);
    assert.match(s.period_start, /^\d{4}-\d\d-\d\dT00:00:00\.000Z$/);
    assert.ok(Date.parse(s.period_end) - Date.parse(s.period_start) > 29 * 86400e3);
    assert.equal(s.by_day.length, 30);
    assert.equal(s.by_day.at(-1).date, today());
    assert.equal(s.by_day.at(-1).requests, 6);
    assert.equal(s.by_day.at(-1).total_tokens, s.total_tokens);
    assert.equal(sum(s.by_day, 'requests'), 6);
    assert.deepEqual(s.by_model.map((m) => [m.model, m.provider, m.requests]), [['gpt-4o-mini', 'mock', 5], ['mock-large', 'mock', 1]]);
    assert.equal(s.by_model[0].prompt_tokens, sum(calls.key.slice(0, 5), 'prompt_tokens'));
    assert.ok(s.by_model[0].avg_latency_ms >= 0);
    const one = await getJson(`/api/v1/usage/${aliceKey.id}/summary?days=1`, people.alice.token);
    assert.equal(one.by_day.length, 1);
    assert.equal(one.total_requests, 6);
    assert.equal(one.period_start, `${today()}T00:00:00.000Z`);
  });

  test('a user\'s usage counts all their keys and their access-token calls', async () => {
    const body = await records(`/api/v1/users/${people.alice.id}/usage`, people.alice.token, 8);
    const jwt = body.items.filter((r) => r.api_key_id === null);
    assert.equal(jwt.length, 2);
    assert.ok(jwt.every((r) => r.endpoint === 'chat' && r.user_id === people.alice.id));
    assert.equal(sum(jwt, 'total_tokens'), sum(calls.aliceJwt, 'total_tokens'));
    const s = await getJson(`/api/v1/users/${people.alice.id}/usage/summary?days=7`, people.alice.token);
    assert.equal(s.user_id, people.alice.id);
    assert.equal(s.total_requests, 8);
    assert.equal(s.total_tokens, sum([...calls.key, ...calls.aliceJwt], 'total_tokens'));
    assert.equal(s.by_day.length, 7);
    // Through her service key as well.
    const viaKey = await fetch(`${url}/api/v1/users/${people.alice.id}/usage/summary`, { headers: { 'X-API-Key': aliceKey.key } });
    assert.equal(viaKey.status, 200);
    assert.equal((await viaKey.json()).total_requests, 8);
  });

  test('managers and admins read everyone and the whole deployment; users read only their own', async () => {
    await records(`/api/v1/users/${people.bob.id}/usage`, people.bob.token, 1);
    for (const who of ['admin', 'manager']) {
      const token = people[who].token;
      assert.equal((await getJson(`/api/v1/usage/${aliceKey.id}`, token)).items.length, 6, who);
      assert.equal((await getJson(`/api/v1/users/${people.alice.id}/usage/summary`, token)).total_requests, 8, who);
      const everyone = await records('/api/v1/usage', token, 9);
      assert.deepEqual(new Set(everyone.items.map((r) => r.user_id)), new Set([people.alice.id, people.bob.id]));
      const s = await getJson('/api/v1/usage/summary', token);
      assert.equal(s.total_requests, 9, who);
      assert.equal(s.total_tokens, sum([...calls.key, ...calls.aliceJwt, ...calls.bob], 'total_tokens'));
      assert.equal(!('user_id' in s) && !('api_key_id' in s), true);
      const bobs = await getJson(`/api/v1/usage?user_id=${people.bob.id}`, token);
      assert.equal(bobs.items.length, 1);
      assert.equal((await getJson(`/api/v1/usage/summary?api_key_id=${aliceKey.id}`, token)).total_requests, 6);
    }
    // Bob cannot see that Alice's key or Alice exist; nor the deployment.
    for (const route of [`/api/v1/usage/${aliceKey.id}`, `/api/v1/usage/${aliceKey.id}/summary`,
      `/api/v1/users/${people.alice.id}/usage`, `/api/v1/users/${people.alice.id}/usage/summary`,
      `/api/v1/usage/${aliceKey.id}?format=csv`]) {
      expectErrorEnvelope(assert, await getJson(route, people.bob.token, 404), 'NOT_FOUND');
    }
    expectErrorEnvelope(assert, await getJson('/api/v1/usage', people.alice.token, 403), 'FORBIDDEN');
    expectErrorEnvelope(assert, await getJson('/api/v1/usage/summary', people.bob.token, 403), 'FORBIDDEN');
    expectErrorEnvelope(assert, await getJson('/api/v1/usage/nokey', people.admin.token, 404), 'NOT_FOUND');
    const anonymous = await fetch(`${url}/api/v1/usage/${aliceKey.id}`);
    assert.equal(anonymous.status, 401);
  });

  test('CSV export (?format=csv or Accept: text/csv) holds the same records', async () => {
    const records = (await getJson(`/api/v1/usage/${aliceKey.id}`, people.alice.token)).items;
    for (const [route, headers] of [[`/api/v1/usage/${aliceKey.id}?format=csv`, {}], [`/api/v1/usage/${aliceKey.id}`, { Accept: 'text/csv' }]]) {
      const res = await get(route, people.alice.token, headers);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/csv/);
      assert.match(res.headers.get('content-disposition'), /^attachment; filename="usage\.csv"$/);
      assert.equal(res.headers.get('x-next-cursor'), null);
      const rows = parseCsv(await res.text());
      assert.deepEqual(rows[0], ['id', 'created_at', 'request_id', 'user_id', 'api_key_id', 'provider', 'model', 'endpoint', 'status',
        'streamed', 'prompt_tokens', 'completion_tokens', 'total_tokens', 'latency_ms', 'cost_usd']);
      assert.equal(rows.length, 1 + records.length);
      rows.slice(1).forEach((row, i) => {
        const r = records[i];
        assert.deepEqual(row, [String(r.id), r.created_at, r.request_id ?? '', r.user_id, r.api_key_id, r.provider, r.model, r.endpoint,
          String(r.status), String(r.streamed), String(r.prompt_tokens), String(r.completion_tokens), String(r.total_tokens),
          String(r.latency_ms), r.cost_usd.toFixed(9)]);
      });
    }
    // ?format=json wins over Accept.
    const asJson = await get(`/api/v1/usage/${aliceKey.id}?format=json`, people.alice.token, { Accept: 'text/csv' });
    assert.match(asJson.headers.get('content-type'), /json/);
    // A short export says where the next one continues.
    const first = await get(`/api/v1/usage/${aliceKey.id}?format=csv&limit=4`, people.alice.token);
    const cursor = first.headers.get('x-next-cursor');
    assert.ok(cursor);
    const firstRows = parseCsv(await first.text()).slice(1);
    assert.equal(firstRows.length, 4);
    const rest = await get(`/api/v1/usage/${aliceKey.id}?format=csv&cursor=${encodeURIComponent(cursor)}`, people.alice.token);
    assert.equal(rest.headers.get('x-next-cursor'), null);
    const restRows = parseCsv(await rest.text()).slice(1);
    assert.deepEqual([...firstRows, ...restRows].map((r) => Number(r[0])), records.map((r) => r.id));
  });

  test('a long CSV export is streamed in pages, bounded, and continues with X-Next-Cursor', async () => {
    // 12,000 rows of a key that no longer exists, written straight into the table (and its rollups
    // left alone: records are read from the events).
    const n = 12000;
    const base = Date.parse('2026-01-01T00:00:00Z');
    const sql = BACKEND === 'postgres'
      ? `INSERT INTO usage_events (user_id, api_key_id, provider, model, endpoint, status, streamed, prompt_tokens, completion_tokens, total_tokens, latency_ms, cost_nanos, request_id, created_at)
         SELECT 'ghost', 'ghost-key', 'mock', 'gpt-4o-mini', 'chat.completions', 200, 0, i, 1, i + 1, 5, 1500, 'req,"' || i || '"', ${base} + i * 1000 FROM generate_series(1, ${n}) AS i`
      : `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${n})
         INSERT INTO usage_events (user_id, api_key_id, provider, model, endpoint, status, streamed, prompt_tokens, completion_tokens, total_tokens, latency_ms, cost_nanos, request_id, created_at)
         SELECT 'ghost', 'ghost-key', 'mock', 'gpt-4o-mini', 'chat.completions', 200, 0, i, 1, i + 1, 5, 1500, 'req,"' || i || '"', ${base} + i * 1000 FROM s`;
    if (BACKEND === 'postgres') execFileSync('psql', [stack.p.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-qc', sql]);
    else execFileSync('sqlite3', ['-cmd', '.timeout 5000', path.join(stack.p.dataDir, 'parley.db'), sql]);

    const route = '/api/v1/usage?api_key_id=ghost-key&format=csv';
    const first = await get(`${route}&limit=7001`, admin);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('transfer-encoding'), 'chunked', 'streamed');
    const cursor = first.headers.get('x-next-cursor');
    assert.ok(cursor.startsWith(`${base + (n - 7000) * 1000}.`), cursor);
    const rows = parseCsv(await first.text()).slice(1);
    assert.equal(rows.length, 7001);
    assert.equal(rows[0][2], `req,"${n}"`, 'quoted and unquoted again');
    assert.equal(rows[0][14], '0.000001500');
    rows.forEach((r, i) => assert.equal(Number(r[10]), n - i));
    const rest = await get(`${route}&cursor=${encodeURIComponent(cursor)}`, admin);
    assert.equal(rest.headers.get('x-next-cursor'), null);
    const restRows = parseCsv(await rest.text()).slice(1);
    assert.equal(restRows.length, n - 7001);
    assert.equal(Number(restRows[0][10]), n - 7001);
    assert.equal(Number(restRows.at(-1)[10]), 1);
    // Exactly the limit: nothing more to say.
    const all = await get(`${route}&limit=${n}`, admin);
    assert.equal(all.headers.get('x-next-cursor'), null);
    assert.equal(parseCsv(await all.text()).length, n + 1);
  });

  test('bad query parameters are 422 VALIDATION_ERROR naming the parameter', async () => {
    const cases = [
      [`/api/v1/usage/${aliceKey.id}?limit=0`, 'limit'],
      [`/api/v1/usage/${aliceKey.id}?limit=501`, 'limit'],
      [`/api/v1/usage/${aliceKey.id}?limit=ten`, 'limit'],
      [`/api/v1/usage/${aliceKey.id}?format=csv&limit=100001`, 'limit'],
      [`/api/v1/usage/${aliceKey.id}?cursor=nonsense`, 'cursor'],
      [`/api/v1/usage/${aliceKey.id}?since=yesterday`, 'since'],
      [`/api/v1/usage/${aliceKey.id}?until=2026-02-30`, 'until'],
      [`/api/v1/usage/${aliceKey.id}?since=2026-02-01&until=2026-01-01`, 'until'],
      [`/api/v1/usage/${aliceKey.id}?format=xml`, 'format'],
      [`/api/v1/usage/${aliceKey.id}/summary?days=0`, 'days'],
      [`/api/v1/usage/${aliceKey.id}/summary?days=367`, 'days'],
      [`/api/v1/users/${people.alice.id}/usage/summary?days=1.5`, 'days'],
      [`/api/v1/users/${people.alice.id}/usage?since=`, 'since'],
      ['/api/v1/usage?user_id=', 'user_id'],
    ];
    for (const [route, param] of cases) {
      const body = await getJson(route, people.admin.token, 422);
      expectErrorEnvelope(assert, body, 'VALIDATION_ERROR');
      assert.equal(body.error.param, param, route);
    }
    const max = await getJson(`/api/v1/usage/${aliceKey.id}/summary?days=366`, people.alice.token);
    assert.equal(max.by_day.length, 366);
  });
});
