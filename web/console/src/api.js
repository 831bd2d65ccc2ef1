// The console's only way to reach parley: same-origin fetch calls to the documented API.
// The access token lives in this module's memory only (never in storage); the refresh token is an
// HttpOnly cookie the browser sends to /api/v1/auth/refresh, which page scripts cannot read.

let accessToken = null;
let refresher = null; // () => Promise<boolean>: renews the access token once (session.js)

export function setAccessToken(token) {
  accessToken = token;
}

export function hasAccessToken() {
  return accessToken !== null;
}

export function setRefresher(fn) {
  refresher = fn;
}

// An error answer of parley (its envelope {error: {code, message, param, request_id}}), or a
// network failure (status 0, code NETWORK_ERROR).
export class ApiError extends Error {
  constructor(status, error = {}) {
    super(error.message || `Request failed (${status})`);
    this.status = status;
    this.code = error.code || (status === 0 ? 'NETWORK_ERROR' : 'UNEXPECTED_ERROR');
    this.param = error.param ?? null;
    this.requestId = error.request_id ?? null;
  }
}

export async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return new ApiError(res.status, body && typeof body.error === 'object' ? body.error : {});
}

function prepare(options) {
  const headers = { ...(options.headers || {}) };
  let body = options.body;
  if (accessToken && !options.anonymous) headers.Authorization = `Bearer ${accessToken}`;
  if (body !== undefined && !(body instanceof URLSearchParams) && !(body instanceof FormData)) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(body);
  }
  return { method: options.method || 'GET', headers, body, signal: options.signal, credentials: 'same-origin' };
}

// Sends a request and returns the Response; renews the access token once on a 401.
export async function request(path, options = {}) {
  let res;
  try {
    res = await fetch(path, prepare(options));
    if (res.status === 401 && accessToken && !options.anonymous && refresher && (await refresher())) {
      res = await fetch(path, prepare(options));
    }
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, { message: 'parley cannot be reached; check the connection and try again' });
  }
  return res;
}

// request() that reads the answer: parsed JSON, text for other types, null for 204; throws
// ApiError for any status ≥ 400.
export async function api(path, options = {}) {
  const res = await request(path, options);
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

// A query string from an object, leaving out null, undefined and empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Reads a text/event-stream Response: yields {id, event, data} per event (data joined with "\n").
export async function* readEvents(res, signal) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = { id: null, event: 'message', data: [] };
  try {
    for (;;) {
      if (signal && signal.aborted) return;
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r?\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(buffer[nl] === '\r' ? nl + 2 : nl + 1);
        if (line === '') {
          if (event.data.length) yield { id: event.id, event: event.event, data: event.data.join('\n') };
          event = { id: null, event: 'message', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') event.data.push(value);
        else if (field === 'event') event.event = value;
        else if (field === 'id') event.id = value;
      }
    }
  } finally {
    reader.releaseLock?.();
    if (signal && signal.aborted) res.body.cancel().catch(() => {});
  }
}
